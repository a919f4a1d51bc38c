#!/usr/bin/env bash
# Issue 14's and 16's GPU figures (bench/README.md): one default-CNN run, then the default study in several
# settings, each in an empty directory: runs one at a time or in N worker processes sharing the GPU, each unit
# a single run or (--batch-seeds) all seeds of a level as one batched model; then bench/batched_seeds.py on the
# full data. Run from the repo root on a CUDA machine with convlens's dependencies; OUT names an output directory.
# On the lent device (torch preinstalled, no network) the extra wheels it lacks go in .whl/ and the Fashion-MNIST
# .gz files in .data/ (both untracked), as this script expects; .whl/ includes the notebook extra's wheels
# (bench/README.md, "One session, two paces"). SETTINGS overrides the list of study settings ('default': no flags);
# STEPS chooses among train, studies, batched and compile (default: the first three). compile runs
# bench/gpu_compile.py (torch.compile and CUDA graphs against the eager step, issue 16).
# Only the new pieces, on the device (which sets OUT): STEPS="compile studies" SETTINGS="default" bash bench/gpu_study.sh
set -u
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src CONVLENS_DATA=$PWD/.data PYTHONUNBUFFERED=1
cl() { python3 -c "import sys; from convlens.cli import main; sys.exit(main(sys.argv[1:]))" "$@"; }
nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"; nproc
lscpu | grep 'Model name'
STEPS=${STEPS:-"train studies batched"}
if [[ $STEPS == *train* ]]; then
cl train --model cnn --recipe fast --seed 0 --out $OUT/cnn-s0 --quiet
python3 -c "
import json; m=json.load(open('$OUT/cnn-s0/metrics.json')); print('cnn run', round(m['test_accuracy'],4), round(m['train_seconds'],2), 's', round(m['train_images_per_second']), 'img/s')" | tee -a $OUT/summary.txt
rm -f $OUT/cnn-s0/model.safetensors $OUT/cnn-s0/predictions.npz $OUT/cnn-s0/config.json  # at most 8 files come back
fi
SETTINGS=${SETTINGS:-"default|w4 --workers 4 --no-batch-seeds|w4b --workers 4 --batch-seeds|w5b --workers 5 --batch-seeds|w1b --workers 1 --batch-seeds|w8 --workers 8 --no-batch-seeds"}
IFS='|' read -ra settings <<< "$SETTINGS"
[[ $STEPS == *studies* ]] || settings=()
for setting in "${settings[@]}"; do
  w=${setting%% *}; flags=""; [[ $setting == *" "* ]] && flags=${setting#* }
  rm -rf /tmp/study-$w  # a warm machine keeps /tmp: a study there would reuse its runs
  s=$(date +%s.%N); cl study $flags --out /tmp/study-$w --quiet; e=$(date +%s.%N)
  echo "study ${flags:-(no flags)}: wall $(python3 -c "print(round($e-$s,1))") s" | tee -a $OUT/summary.txt
  python3 - "$w" <<'PY' | tee -a $OUT/summary.txt
import json, sys
w = sys.argv[1]
r = json.load(open(f"/tmp/study-{w}/results.json"))
st = r["study"]
print("  stages", {k: (round(v, 1) if v else v) for k, v in st["stage_seconds"].items()}, "runs", st["runs"])
print("  device", st["provenance"]["device"], "workers", st["config"]["workers"])
print("  CNN", r["design"]["test_accuracy"], "\n  MLP", r["baseline"]["test_accuracy"])
PY
  cp /tmp/study-$w/results.json $OUT/results-$w.json
done
if [[ $STEPS == *batched* ]]; then python3 bench/batched_seeds.py --seeds 3 --train-subset 60000 --epochs 4 | tee -a $OUT/summary.txt; fi
if [[ $STEPS == *compile* ]]; then python3 bench/gpu_compile.py | tee -a $OUT/summary.txt; fi
