"""convlens: controlled, multi-seed experiments on convolutional architectures.

Data flows one way: config -> data -> model -> training -> run store -> statistics -> report.

    import convlens
    ds = convlens.load_dataset("fashion-mnist")           # numpy arrays, class names, ds.explore()
    convlens.summary("cnn", kernel_size=5)                # the Keras-like table (.to_frame())
    run = convlens.train("cnn", ds, epochs=2)             # a Run: .metrics, .history, .predict(), .export()
    result = convlens.Experiment.builtin("kernel-size").run(seeds=3)
    result.table()                                        # mean, std, CI, diff, p, Holm p, verdict
    convlens.Study("quick").run(out="runs/quick")         # the whole report, also as report.ipynb
    convlens.ConvNetClassifier(epochs=2).fit(X, y).score(X_test, y_test)

Names are loaded on first use, so ``import convlens`` stays light.
"""

from __future__ import annotations

__version__ = "0.1.0"

from convlens.errors import ConvlensError, UsageError  # noqa: E402
from convlens.lazy_exports import lazy_exports  # noqa: E402

_PUBLIC = {
    "load_dataset": "convlens.api.runs", "summary": "convlens.api.runs", "train": "convlens.api.runs",
    "load_run": "convlens.api.runs", "Run": "convlens.api.runs",
    "Experiment": "convlens.api.experiments", "ExperimentResult": "convlens.api.experiments",
    "load_experiment": "convlens.api.experiments",
    "Study": "convlens.api.study", "StudyResult": "convlens.api.study", "load_study": "convlens.api.study",
    "ConvNetClassifier": "convlens.api.estimator",
    "create_model": "convlens.models.registry", "list_models": "convlens.models.registry",
}

__all__ = ["ConvNetClassifier", "ConvlensError", "Experiment", "ExperimentResult", "Run", "Study", "StudyResult",
           "UsageError", "__version__", "create_model", "list_models", "load_dataset", "load_experiment", "load_run",
           "load_study", "summary", "train"]
assert set(__all__) == {"ConvlensError", "UsageError", "__version__", *_PUBLIC}


__getattr__, __dir__ = lazy_exports(globals(), _PUBLIC)
