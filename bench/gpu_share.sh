#!/usr/bin/env bash
# Issue 14: how many runs should share one GPU? The built-in kernel-size experiment (3 levels x 3 seeds, 9 runs of
# the default CNN on Fashion-MNIST, recipe fast) with --gpus-per-run 1, 0.5, 0.25 and 0.125 (1, 2, 4, 8 runs at
# once), each in a fresh directory; then the same through Ray when Ray is installed. Run from the repo root on a
# CUDA machine; the lent device's setup (wheels in .whl/, data in .data/) is as in gpu_study.sh.
set -u
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD/src CONVLENS_DATA=$PWD/.data
fi
export PYTHONUNBUFFERED=1
cl() { python3 -c "import sys; from convlens.cli import main; sys.exit(main(sys.argv[1:]))" "$@"; }
nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"; nproc
summary() {  # wall time, summed training time, mean accuracy per level
  python3 - "$1" "$2" <<'PY'
import json, sys, glob
out, wall = sys.argv[1], float(sys.argv[2])
runs = [json.load(open(p)) for p in glob.glob(f"{out}/runs/*/*/metrics.json")]
train = sum(r["train_seconds"] for r in runs)
images = sum(r["train_images_per_second"] * r["train_seconds"] for r in runs)
levels = json.load(open(f"{out}/summary.json"))["levels"]
print(f"  {len(runs)} runs, wall {wall:.1f} s, training summed {train:.1f} s, {images / wall:,.0f} training img/s overall;",
      "; ".join(f"{lv['label']} {lv['test_accuracy']['mean'] * 100:.2f}%" for lv in levels))
PY
}
for g in 1 0.5 0.25 0.125; do
  s=$(date +%s.%N); cl experiment run kernel-size --gpus-per-run $g --out /tmp/share-$g --quiet >/dev/null || exit 1; e=$(date +%s.%N)
  echo "local --gpus-per-run $g"; summary /tmp/share-$g $(python3 -c "print($e-$s)")
done
if python3 -c "import ray" 2>/dev/null; then
  s=$(date +%s.%N); cl experiment run kernel-size --backend ray --gpus-per-run 0.25 --cpus-per-run 4 --out /tmp/ray-share --quiet >/dev/null || exit 1; e=$(date +%s.%N)
  echo "ray --gpus-per-run 0.25 --cpus-per-run 4"; summary /tmp/ray-share $(python3 -c "print($e-$s)")
else
  echo "ray: not installed on this machine"
fi
