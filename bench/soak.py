"""Soak `convlens serve`: a fixed rate for a minute, with a share of hostile requests mixed in; errors, latency
percentiles and the server's resident memory at the start and the end.

Every request's answer is checked: valid requests must get 200, hostile ones the documented 4xx (an "error" is
anything else: a 5xx, a reset, a timeout, a wrong status). Memory is the server process's VmRSS (plus its
children's, for --workers > 1), read from /proc after a warm-up and again after the soak. Usage:
  .venv/bin/python bench/soak.py MODEL_DIR [--rate 200] [--seconds 60] [--hostile 0.1]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import fixed_rate, free_port, start_server  # noqa: E402

from convlens.data import load_idx_dataset  # noqa: E402

HOSTILE = [  # (body, content type, expected status): a few of the catalogue's cases
    (b"[" * 50_000 + b"]" * 50_000, "application/json", 400),
    (b'{"instances": [[' + b",".join([b"9" * 400] * 784) + b"]]}", "application/json", 400),
    (b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (10000000000000,), }" + b" " * 50
     + b"\n", "application/x-npy", 400),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image/png", 400),
    (b"hello", "text/plain", 415),
]


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its children (uvicorn workers), KiB."""
    total = 0
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def soak(port: int, valid: bytes, rate: float, seconds: float, hostile_share: float) -> dict:
    """serve_load's open-loop load with a share of hostile requests; latency percentiles of the valid ones."""
    n = int(rate * seconds)
    rng = np.random.default_rng(0)
    kinds = np.where(rng.random(n) < hostile_share, rng.integers(0, len(HOSTILE), n), -1)
    result = fixed_rate(port, valid, rate, seconds, request=lambda i: (valid, "application/json", 200)
                        if kinds[i] < 0 else HOSTILE[kinds[i]])
    valid_ms = result["latencies_ms"][kinds < 0]
    return {**result, "hostile": int((kinds >= 0).sum()), "p50_ms": float(np.percentile(valid_ms, 50)),
            "p99_ms": float(np.percentile(valid_ms, 99)), "max_ms": float(valid_ms.max())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--hostile", type=float, default=0.1, help="share of hostile requests")
    args = parser.parse_args()
    ds = load_idx_dataset()
    port = free_port()
    server = start_server(args.model_dir, port, 1)
    try:
        valid = json.dumps({"instances": [(ds.test_images[0] / 255.0).round(4).tolist()]}).encode()
        soak(port, valid, args.rate, 5, args.hostile)  # warm-up: allocator pools, thread pool, caches
        before = rss_kib(server.pid)
        result = soak(port, valid, args.rate, args.seconds, args.hostile)
        after = rss_kib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"{result['requests']} requests at {args.rate:.0f} req/s for {args.seconds:.0f} s "
          f"({result['hostile']} hostile), achieved {result['achieved_rate']:.0f} req/s: errors {result['errors']}"
          f"{' ' + str(result['first_errors']) if result['errors'] else ''}; valid requests p50 "
          f"{result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, max {result['max_ms']:.1f} ms; resident "
          f"memory {before / 1024:.1f} MiB after warm-up, {after / 1024:.1f} MiB at the end "
          f"({(after - before) / before:+.1%})")
    if result["errors"] or after > 1.10 * before:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
