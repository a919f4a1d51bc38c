"""Provenance recorded with every result: versions, device, host, time."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
from importlib import metadata

import torch

import convlens


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "convlens": convlens.__version__}
    for name in ("torch", "numpy", "safetensors", "pydantic"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover - all are hard dependencies
            versions[name] = "missing"
    return versions


def device_description(device: torch.device) -> dict[str, object]:
    info: dict[str, object] = {"type": device.type, "threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
    else:
        info["name"] = platform.processor() or platform.machine()
        info["cpus"] = os.cpu_count()
    return info


def provenance(device: torch.device) -> dict[str, object]:
    return {
        "versions": package_versions(),
        "device": device_description(device),
        "host": platform.node(),
        "platform": platform.platform(),
        "command": " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]]),
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
