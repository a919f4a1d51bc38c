"""Shared serving fixtures: a live server for the exported model (tests/conftest.py: ``exported``)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_answers(url: str, proc, seconds: float) -> bool:
    """Poll ``url`` until it answers 200 (True), or ``proc`` exits or ``seconds`` pass (False)."""
    deadline = time.monotonic() + seconds
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


@pytest.fixture(scope="session")
def live_server(exported):
    """`convlens serve` on 127.0.0.1 in its own process; yields the base URL once /ping answers."""
    port = free_port()
    exe = str(Path(sys.executable).parent / "convlens")
    proc = subprocess.Popen([exe, "serve", str(exported[0]), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    if not wait_until_answers(f"{url}/ping", proc, 60):
        proc.kill()
        pytest.fail(f"convlens serve did not start: {proc.stderr.read().decode()[-2000:]}")
    yield url
    proc.terminate()
    proc.wait(timeout=30)
