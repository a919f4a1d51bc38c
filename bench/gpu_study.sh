#!/usr/bin/env bash
# Issue 14's GPU figures (bench/README.md): one default-CNN run, then the default study with 1 and with 4 runs
# sharing the GPU. Run from the repo root on a CUDA machine with convlens's dependencies; OUT names an output
# directory. On the lent device (torch preinstalled, no network) the extra wheels it lacks go in .whl/ and the
# Fashion-MNIST .gz files in .data/ (both untracked), as this script expects.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src CONVLENS_DATA=$PWD/.data PYTHONUNBUFFERED=1
cl() { python3 -c "import sys; from convlens.cli import main; sys.exit(main(sys.argv[1:]))" "$@"; }
nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"; nproc
cl train --model cnn --recipe fast --seed 0 --out $OUT/cnn-s0 --quiet
for w in 1 4; do
  s=$(date +%s.%N); cl study --workers $w --out /tmp/study-w$w --quiet; e=$(date +%s.%N)
  echo "study workers=$w wall $(python3 -c "print(round($e-$s,1))") s"
  python3 - "$w" <<'PY'
import json, sys
w = sys.argv[1]
r = json.load(open(f"/tmp/study-w{w}/results.json"))
st = r["study"]
print("  stages", {k: (round(v, 1) if v else v) for k, v in st["stage_seconds"].items()}, "runs", st["runs"])
print("  device", st["provenance"]["device"])
print("  CNN", r["design"]["test_accuracy"], "\n  MLP", r["baseline"]["test_accuracy"])
PY
done
cp /tmp/study-w1/results.json $OUT/results-w1.json; cp /tmp/study-w4/results.json $OUT/results-w4.json
python3 -c "
import json; m=json.load(open('$OUT/cnn-s0/metrics.json')); print('cnn run', round(m['test_accuracy'],4), round(m['train_seconds'],2), 's', round(m['train_images_per_second']), 'img/s')"
rm -f $OUT/cnn-s0/model.safetensors
