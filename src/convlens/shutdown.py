"""How a process convlens owns ends: the console script and the training workers."""

from __future__ import annotations

import atexit
import gc


def skip_the_last_collection() -> None:
    """Leave this process without the garbage collector's last pass over everything alive.

    At exit CPython collects once more over every object still alive. With torch, the ONNX exporter and the
    plotting stack loaded that is about 600,000 objects, and the pass takes 1-2.5 s on 2 cores (bench/README.md,
    "Leaving without the last collection"). Nothing of convlens' waits for it: files are written atomically and
    closed, the notebook's kernel is shut down, worker pools are joined. Frozen objects are not scanned, so
    freezing them at exit skips the pass and nothing else. Handlers registered after this one (Ray's, MLflow's)
    run before it. Only for processes convlens owns, never from library code a user imports.
    """
    atexit.register(gc.freeze)
