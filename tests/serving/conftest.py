"""Shared serving fixtures: a live server for the exported model (tests/conftest.py: ``exported``)."""

from __future__ import annotations

import re
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
    """`convlens serve --port 0` on 127.0.0.1 in its own process; yields the base URL it prints once /ping answers
    there (any free port: the printed line must name the one it serves on)."""
    exe = str(Path(sys.executable).parent / "convlens")
    proc = subprocess.Popen([exe, "serve", str(exported[0]), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    printed = proc.stdout.readline()
    found = re.search(r" on (http://127\.0\.0\.1:(\d+))/ \(POST /invocations", printed)
    assert found and int(found[2]) > 0, printed
    url = found[1]
    if not wait_until_answers(f"{url}/ping", proc, 60):
        proc.kill()
        pytest.fail(f"convlens serve did not start: {proc.stderr.read()[-2000:]}")
    yield url
    proc.terminate()
    proc.wait(timeout=30)
