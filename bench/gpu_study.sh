#!/usr/bin/env bash
# Issue 14's and 16's GPU figures (bench/README.md): one default-CNN run; all seeds of a level as one batched model
# against separate runs (bench/batched_seeds.py, full data); then the default study three ways: one run at a
# time with each level's seeds batched (the default on CUDA), one run at a time unbatched, and 4 runs sharing
# the GPU. Run from the repo root on a CUDA machine with convlens's dependencies; OUT names an output directory.
# On the lent device (torch preinstalled, no network) the extra wheels it lacks go in .whl/ and the Fashion-MNIST
# .gz files in .data/ (both untracked), as this script expects.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src CONVLENS_DATA=$PWD/.data PYTHONUNBUFFERED=1
cl() { python3 -c "import sys; from convlens.cli import main; sys.exit(main(sys.argv[1:]))" "$@"; }
nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"; nproc
cl train --model cnn --recipe fast --seed 0 --out $OUT/cnn-s0 --quiet
python3 bench/batched_seeds.py --seeds 3 --train-subset 60000 --epochs 4
for setting in "w1 --workers 1" "w1-separate --workers 1 --no-batch-seeds" "w4 --workers 4"; do
  w=${setting%% *}; flags=${setting#* }
  rm -rf /tmp/study-$w  # a warm machine keeps /tmp: a study there would reuse its runs
  s=$(date +%s.%N); cl study $flags --out /tmp/study-$w --quiet; e=$(date +%s.%N)
  echo "study $flags: wall $(python3 -c "print(round($e-$s,1))") s"
  python3 - "$w" <<'PY'
import json, sys
w = sys.argv[1]
r = json.load(open(f"/tmp/study-{w}/results.json"))
st = r["study"]
print("  stages", {k: (round(v, 1) if v else v) for k, v in st["stage_seconds"].items()}, "runs", st["runs"])
print("  device", st["provenance"]["device"])
print("  CNN", r["design"]["test_accuracy"], "\n  MLP", r["baseline"]["test_accuracy"])
PY
done
for w in w1 w1-separate w4; do cp /tmp/study-$w/results.json $OUT/results-$w.json; done
python3 -c "
import json; m=json.load(open('$OUT/cnn-s0/metrics.json')); print('cnn run', round(m['test_accuracy'],4), round(m['train_seconds'],2), 's', round(m['train_images_per_second']), 'img/s')"
rm -f $OUT/cnn-s0/model.safetensors
