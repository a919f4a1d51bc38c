"""How a process convlens owns ends: the console script and the training workers."""

from __future__ import annotations

import atexit
import gc


def skip_the_last_collection() -> None:
    """Leave this process without the garbage collector's last pass over everything alive.

    At exit CPython collects once more over every object still alive. With torch, the ONNX exporter and the
    plotting stack loaded that is about 600,000 objects, and the pass takes 1-2.5 s on 2 cores (bench/README.md,
    "Leaving without the last collection"). Frozen objects are not scanned, so garbage caught in reference cycles
    at exit is no longer finalized: no ``__del__``, no weakref callback for it (an unclosed file in a cycle would
    lose its unflushed bytes). Nothing of convlens' depends on that: its files are written atomically inside
    ``with`` blocks, the notebook's kernels are shut down, worker pools are joined. Every exit handler still runs
    (this one runs last: Ray's, MLflow's and ``weakref.finalize``'s were registered later), and objects outside
    cycles are still freed. Only for processes convlens owns, never from library code a user imports.
    """
    atexit.register(gc.freeze)
