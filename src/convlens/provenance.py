"""Provenance recorded with every result: versions, device, host, time."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
from importlib import metadata
from typing import TYPE_CHECKING

import convlens

if TYPE_CHECKING:  # only a device's description asks torch; the versions and the CPU model do not
    import torch


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "convlens": convlens.__version__}
    for name in ("torch", "numpy", "safetensors", "pydantic"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover - all are hard dependencies
            versions[name] = "missing"
    return versions


def cpu_model() -> str:
    """The processor's model name ('AMD EPYC 7B13', 'Intel(R) Xeon(R) Processor'): two machines of one kind may
    differ 1.5x in speed, so every timing records it."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description(device: torch.device) -> dict[str, object]:
    import torch
    info: dict[str, object] = {"type": device.type, "threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
        info["cpu"] = cpu_model()
    else:
        info["name"] = cpu_model()
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
