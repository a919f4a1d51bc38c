"""Load on `convlens serve` (2 cores): latency at a fixed rate, and batched throughput.

1. Single-image JSON at a fixed rate (open loop): requests are scheduled every 1/rate s over keep-alive
   connections, and latency is measured from each request's *scheduled* time, so queueing counts
   (no coordinated omission). Prints p50/p90/p99/max and the achieved rate.
2. Batched application/x-npy (uint8, BATCH images per request) with wrk (Debian package `wrk`), closed loop:
   images/s = requests/s x BATCH.

The load generator runs on the same 2 cores as the server (there is no other machine), so these figures
include its cost. 3. --curve R1,R2,...: single-image latency (p50/p99/max) against offered load, open loop from an asyncio
   generator (bench's own, cheap enough to leave the cores to the server), up to saturation.

Usage:
  .venv/bin/python bench/serve_load.py MODEL_DIR [--rate 200] [--seconds 20] [--workers 1] [--batch 256]
  .venv/bin/python bench/serve_load.py MODEL_DIR --curve 500,1000,2000,3000,4000 --seconds 10 [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
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

from convlens.data import load_idx_dataset


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


@contextlib.contextmanager
def running_server(model_dir: str, workers: int):
    """`convlens serve` on a free port for the duration of the block; yields the port."""
    port = free_port()
    server = start_server(model_dir, port, workers)
    try:
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def npy_bytes(images: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, images)
    return buffer.getvalue()


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


async def _open_loop(port: int, body: bytes, content_type: str, rate: float, seconds: float,
                     connections: int) -> dict:
    """Open loop in one asyncio process: request i is due at start + i / rate and goes out on the first free
    keep-alive connection; its latency counts from the due time, so waiting for a connection counts
    (no coordinated omission). Raw HTTP/1.1 over asyncio streams: the generator itself stays cheap."""
    import asyncio
    n = int(rate * seconds)
    head = (f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    latencies = np.full(n, np.nan)
    errors: list[str] = []
    free: asyncio.Queue = asyncio.Queue()
    for _ in range(connections):
        free.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    # Times from perf_counter: uvloop's loop.time() counts whole milliseconds.
    start = time.perf_counter() + 0.1

    async def one(i: int, due: float) -> None:
        reader, writer = await free.get()
        try:
            writer.write(head)
            status = (await reader.readuntil(b"\r\n")).split(b" ", 2)[1]
            length = 0
            while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies[i] = time.perf_counter() - due
            if status != b"200":
                errors.append(status.decode())
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            errors.append(repr(e))
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        free.put_nowait((reader, writer))

    tasks = []
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not free.empty():
        free.get_nowait()[1].close()
    ms = latencies[~np.isnan(latencies)] * 1000
    return {"requests": n, "errors": len(errors), "first_errors": errors[:5], "achieved_rate": len(ms) / elapsed,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max())}


def open_loop(port: int, body: bytes, content_type: str, rate: float, seconds: float, connections: int = 64) -> dict:
    """The generator's event loop is uvloop's (as the server's): it leaves more of the shared cores to the server."""
    import asyncio

    import uvloop
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_open_loop(port, body, content_type, rate, seconds, connections))


def latency_curve(port: int, body: bytes, content_type: str, rates: list[float], seconds: float) -> None:
    """p50/p99 against offered load, up to saturation (stops once achieved falls 10% short of offered)."""
    print("| offered req/s | achieved req/s | p50 ms | p99 ms | max ms | errors |\n|---:|---:|---:|---:|---:|---:|")
    for rate in rates:
        r = open_loop(port, body, content_type, rate, seconds)
        print(f"| {rate:,.0f} | {r['achieved_rate']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.1f} "
              f"| {r['errors']} |", flush=True)
        if r["achieved_rate"] < 0.9 * rate:
            break


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
    parser.add_argument("--curve", default=None,
                        help="comma-separated offered loads (req/s): print the single-image latency curve and stop")
    parser.add_argument("--npy", action="store_true", help="with --curve: one uint8 image as application/x-npy "
                        "instead of JSON")
    args = parser.parse_args()
    if not args.curve and shutil.which("wrk") is None:
        raise SystemExit("needs wrk: apt-get install wrk")
    ds = load_idx_dataset()
    single = json.dumps({"instances": [(ds.test_images[0] / 255.0).round(4).tolist()]}).encode()
    with running_server(args.model_dir, args.workers) as port:
        if args.curve:
            body, content_type = (npy_bytes(ds.test_images[:1]), "application/x-npy") if args.npy else \
                (single, "application/json")
            open_loop(port, body, content_type, 500, 2)  # warm-up
            print(f"single image, {content_type} ({len(body):,} bytes), {args.workers} server worker(s), the load "
                  f"generator (asyncio on uvloop, 64 keep-alive connections, open loop) on the same cores; "
                  f"{args.seconds:.0f} s "
                  "per load")
            latency_curve(port, body, content_type, [float(r) for r in args.curve.split(",")], args.seconds)
            return
        fixed_rate(port, single, args.rate, 2)  # warm-up
        result = fixed_rate(port, single, args.rate, args.seconds)
        print(f"single-image JSON at {args.rate:.0f} req/s for {args.seconds:.0f} s ({args.workers} server "
              f"worker(s)): achieved {result['achieved_rate']:.0f} req/s, p50 {result['p50_ms']:.2f} ms, "
              f"p90 {result['p90_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, max {result['max_ms']:.1f} ms, "
              f"errors {result['errors']} of {result['requests']}")
        with tempfile.TemporaryDirectory() as tmp:
            body = Path(tmp) / "batch.npy"
            body.write_bytes(npy_bytes(ds.test_images[: args.batch]))
            for connections in (1, 2):
                rps = batched_wrk(port, body, 10, connections)
                print(f"batched npy, {args.batch} uint8 images per request, wrk {connections} connection(s): "
                      f"{rps:.1f} req/s = {rps * args.batch:,.0f} images/s")

if __name__ == "__main__":
    main()
