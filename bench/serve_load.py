"""Load on `convlens serve` (2 cores): latency at a fixed rate, and batched throughput.

1. Single-image JSON at a fixed rate (open loop): requests are scheduled every 1/rate s over keep-alive
   connections, and latency is measured from each request's *scheduled* time, so queueing counts
   (no coordinated omission). Prints p50/p90/p99/max and the achieved rate.
2. Batched application/x-npy (uint8, BATCH images per request) with wrk (Debian package `wrk`), closed loop:
   images/s = requests/s x BATCH.

The load generator runs on the same 2 cores as the server (there is no other machine), so these figures
include its cost. Usage:
  .venv/bin/python bench/serve_load.py MODEL_DIR [--rate 200] [--seconds 20] [--workers 1] [--batch 256]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np

from convlens.data import load_dataset


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir: str, port: int, workers: int) -> subprocess.Popen:
    exe = str(Path(sys.executable).parent / "convlens")
    proc = subprocess.Popen([exe, "serve", model_dir, "--port", str(port), "--workers", str(workers)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


def fixed_rate(port: int, body: bytes, rate: float, seconds: float, connections: int = 8,
               request: Callable[[int], tuple[bytes, str, int]] | None = None) -> dict:
    """Open-loop load: request i is due at start + i / rate; latency counts from that due time.
    ``request(i)``: (body, content type, expected status) of request i; default ``body`` as JSON, 200."""
    n = int(rate * seconds)
    request = request or (lambda i: (body, "application/json", 200))
    latencies = np.full(n, np.nan)
    errors = []
    start = time.perf_counter() + 0.2
    next_index = iter(range(n))
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                break
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            payload, content_type, expected = request(i)
            try:
                conn.request("POST", "/invocations", payload, {"Content-Type": content_type})
                response = conn.getresponse()
                response.read()
                if response.status != expected:
                    errors.append(f"{response.status} instead of {expected}")
            except OSError as e:
                errors.append(str(e))
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            latencies[i] = time.perf_counter() - due
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    ms = latencies[~np.isnan(latencies)] * 1000
    return {"requests": n, "errors": len(errors), "first_errors": errors[:5], "latencies_ms": latencies * 1000,
            "achieved_rate": n / elapsed,
            "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max())}


def batched_wrk(port: int, body_path: Path, seconds: int, connections: int) -> float:
    """Requests/s of wrk posting the npy body (closed loop)."""
    script = body_path.with_suffix(".lua")
    script.write_text(f'local f = io.open("{body_path}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
                      'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/x-npy"\n'
                      'done = function(summary, latency, requests)\n'
                      '  io.write(string.format("non2xx=%d\\n", summary.errors.status))\nend\n')
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script),
                          f"http://127.0.0.1:{port}/invocations"], capture_output=True, text=True, check=True).stdout
    if "non2xx=0" not in out:
        raise SystemExit(f"wrk saw errors:\n{out}")
    return float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk: apt-get install wrk")
    ds = load_dataset()
    port = free_port()
    server = start_server(args.model_dir, port, args.workers)
    try:
        single = json.dumps({"instances": [(ds.test_images[0] / 255.0).round(4).tolist()]}).encode()
        fixed_rate(port, single, args.rate, 2)  # warm-up
        result = fixed_rate(port, single, args.rate, args.seconds)
        print(f"single-image JSON at {args.rate:.0f} req/s for {args.seconds:.0f} s ({args.workers} server "
              f"worker(s)): achieved {result['achieved_rate']:.0f} req/s, p50 {result['p50_ms']:.2f} ms, "
              f"p90 {result['p90_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, max {result['max_ms']:.1f} ms, "
              f"errors {result['errors']} of {result['requests']}")
        with tempfile.TemporaryDirectory() as tmp:
            body = Path(tmp) / "batch.npy"
            buffer = io.BytesIO()
            np.save(buffer, ds.test_images[: args.batch])
            body.write_bytes(buffer.getvalue())
            for connections in (1, 2):
                rps = batched_wrk(port, body, 10, connections)
                print(f"batched npy, {args.batch} uint8 images per request, wrk {connections} connection(s): "
                      f"{rps:.1f} req/s = {rps * args.batch:,.0f} images/s")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
