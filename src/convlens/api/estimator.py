"""``ConvNetClassifier``: a convlens model as a scikit-learn classifier, for practitioners' pipelines.

Images come as numpy arrays: (N, H, W) or (N, H, W, 3) (as datasets hold them), (N, C, H, W), or flat rows
(N, D), read as one-channel square images (padded with zeros to at least 8 x 8, what three 2x2 poolings need).
uint8 pixels are divided by 255; then inputs are standardised with the training set's mean and std. Training is
convlens' own loop (the recipe, seeded): ``seed`` fixes the weights, the validation split and the data order.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from convlens.errors import UsageError

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
except ImportError as e:  # absent, or older than 1.6 (validate_data, __sklearn_tags__)
    raise UsageError(f"ConvNetClassifier needs scikit-learn >= 1.6 ({e}): pip install -U 'scikit-learn>=1.6'") \
        from None

MIN_SIDE = 8  # 8 -> 4 -> 2 -> 1 through the default CNN's three poolings


class ConvNetClassifier(ClassifierMixin, BaseEstimator):
    """A convlens network (``model``: a name, ``model_set``: its fields) trained with a recipe, as a classifier.

    Example: ``ConvNetClassifier(model="cnn", epochs=4).fit(X_train, y_train).score(X_test, y_test)``
    """

    def __init__(self, model: str = "cnn", recipe: str = "fast", seed: int = 0, epochs: int | None = None,
                 batch_size: int | None = None, lr: float | None = None, val_fraction: float | None = None,
                 model_set: dict[str, Any] | None = None, device: str = "auto", threads: int | None = None):
        self.model = model
        self.recipe = recipe
        self.seed = seed
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.val_fraction = val_fraction
        self.model_set = model_set
        self.device = device
        self.threads = threads

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        import torch
        # On the CPU: same seed, same threads, same weights. cuDNN's kernels are not deterministic.
        tags.non_deterministic = str(self.device).startswith("cuda") or (self.device == "auto"
                                                                         and torch.cuda.is_available())
        return tags

    # -- input -----------------------------------------------------------------------------------------------
    def _images(self, X, *, fitting: bool) -> np.ndarray:
        """X -> float32 (N, C, S, S), standardised with the training statistics."""
        import scipy.sparse
        images_given = not scipy.sparse.issparse(X) and not hasattr(X, "iloc") and np.asarray(X).ndim in (3, 4)
        if not fitting and hasattr(self, "input_kind_") and self.input_kind_ != ("images" if images_given else "rows"):
            raise ValueError(f"{type(self).__name__} was fitted on {self.input_kind_}; give the same kind of input")
        if fitting:
            self.input_kind_ = "images" if images_given else "rows"
        if not images_given:  # rows (or anything else): scikit-learn's own validation and messages apply
            X = validate_data(self, X, reset=fitting, dtype=[np.float64, np.float32, np.uint8], ensure_min_samples=1)
            side = max(MIN_SIDE, math.ceil(math.sqrt(X.shape[1])))
            flat = np.zeros((len(X), side * side), np.float32)
            flat[:, :X.shape[1]] = X / 255 if X.dtype == np.uint8 else X
            images = flat.reshape(-1, 1, side, side)
            shape_given = images.shape[1:]
        else:
            X = np.asarray(X)  # 3 or 4 dimensions, as images_given says
            if len(X) == 0:  # as scikit-learn's own validation says it for rows
                raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required.")
            if np.iscomplexobj(X):  # as scikit-learn says it for rows
                raise ValueError("Complex data not supported")
            if not np.issubdtype(X.dtype, np.number):
                raise ValueError(f"expected images (N, H, W), (N, H, W, C), (N, C, H, W) or rows (N, D); got an "
                                 f"array of shape {X.shape} and dtype {X.dtype}")
            scaled = X / 255 if X.dtype == np.uint8 else X
            if X.ndim == 3:
                images = scaled[:, None]
            elif X.shape[-1] in (1, 3) and X.shape[1] not in (1, 3):
                images = np.moveaxis(scaled, -1, 1)
            else:
                images = scaled
            images = images.astype(np.float32)
            if images.shape[2] != images.shape[3] or images.shape[1] not in (1, 3):
                raise ValueError(f"expected square images with 1 or 3 channels; got (N, C, H, W) = {images.shape}")
            if not np.isfinite(images).all():
                raise ValueError("Input X contains NaN or infinity.")
            if fitting:
                self.n_features_in_ = int(np.prod(X.shape[1:]))
            elif images.shape[1:] != self.image_shape_:
                raise ValueError(f"X has images of shape {images.shape[1:]}, but {type(self).__name__} was fitted "
                                 f"on {self.image_shape_}")
            shape_given = images.shape[1:]
            if images.shape[2] < MIN_SIDE:  # zeros after the image, as rows get them: what the poolings need
                pad = MIN_SIDE - images.shape[2]
                images = np.pad(images, ((0, 0), (0, 0), (0, pad), (0, pad)))
        if fitting:
            self.image_shape_ = shape_given
            self.mean_ = float(images.mean())
            self.scale_ = float(images.std()) or 1.0
        return ((images - self.mean_) / self.scale_).astype(np.float32)

    # -- scikit-learn interface ----------------------------------------------------------------------------------
    def fit(self, X, y):
        """Train a fresh network on X, y (a validation split of the recipe's fraction is held out of it)."""
        import torch

        from convlens.config import model_spec, train_config
        from convlens.data.dataset import DeviceSplits, validation_indices
        from convlens.models.network import Network, check_size, device_memory
        from convlens.training import pick_device, seed_everything, threads_kept, train, uses_channels_last
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        from_data = sorted({"in_channels", "image_size", "num_classes"} & set(self.model_set or {}))
        if from_data:  # else silently replaced below
            raise ValueError(f"model_set: {', '.join(from_data)} come{'s' if len(from_data) == 1 else ''} from X and "
                             "y; leave them out")
        images = self._images(X, fitting=True)
        y = column_or_1d(y, warn=True)
        if len(y) != len(images):
            raise ValueError(f"y must be one label per sample: {len(images)} samples, {len(y)} labels")
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"Classifier can't train when only one class is present: {self.classes_[0]!r}")
        cfg = train_config(self.model, "digits", recipe=self.recipe, seed=self.seed, set=self.model_set,
                           device=self.device, threads=self.threads, epochs=self.epochs, batch_size=self.batch_size,
                           lr=self.lr, val_fraction=self.val_fraction)
        channels, side = images.shape[1], images.shape[2]
        spec = model_spec(cfg).model_copy(update={"in_channels": channels, "image_size": side,
                                                  "num_classes": len(self.classes_)})
        device = pick_device(cfg.device)
        check_size(spec, training=True, memory=device_memory(device))
        with threads_kept():  # the fit's count is its own, not the session's from now on
            if cfg.threads:  # only when asked: a grid search running fits in parallel sets its own
                torch.set_num_threads(cfg.threads)
            # In the layout convlens' runs train in (runs._prepare_run): NHWC on the CPU, where oneDNN's convolutions
            # are fastest; the same fit took 2x as long in NCHW (bench/README.md, "The notebook's estimator").
            layout = torch.channels_last if uses_channels_last(device) else torch.contiguous_format
            x_all = torch.from_numpy(images).to(device)
            y_all = torch.as_tensor(encoded.astype(np.int64), device=device)
            val_fraction = cfg.recipe.val_fraction if len(y_all) * cfg.recipe.val_fraction >= 1 else 0.0
            train_idx, val_idx = (i.to(device) for i in validation_indices(len(y_all), val_fraction, cfg.seed))
            splits = DeviceSplits(x_all[train_idx].contiguous(memory_format=layout), y_all[train_idx],
                                  x_all[val_idx].contiguous(memory_format=layout), y_all[val_idx], x_all[:0], y_all[:0])
            if self.batch_size is not None and self.batch_size > len(train_idx):
                # as scikit-learn's MLPClassifier does: clipped, with a warning (a grid search's small folds are
                # not an error); each epoch is then one batch of every training image
                warnings.warn(f"batch_size={self.batch_size} is larger than the {len(train_idx):,} images this fit "
                              f"trains on (after the validation split): each epoch is one batch of {len(train_idx):,}",
                              UserWarning, stacklevel=2)
            seed_everything(cfg.seed)
            network = Network(spec).to(device=device, memory_format=layout)
            outcome = train(network, splits, cfg.recipe, seed=cfg.seed)
            self.network_ = network.eval().cpu()
            self.history_ = [vars(r) for r in outcome.history]
            self.spec_ = spec.model_dump(mode="json")
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``."""
        import torch

        from convlens.training import predict_logits
        check_is_fitted(self, "network_")
        # NHWC and batches of 256, as convlens evaluates on the CPU (batches of 1,000 ran 2.2x slower per image)
        images = torch.from_numpy(self._images(X, fitting=False)).contiguous(memory_format=torch.channels_last)
        return torch.softmax(predict_logits(self.network_, images), dim=1).double().numpy()

    def predict(self, X) -> np.ndarray:
        """The most probable class of each sample, as a label from ``classes_``."""
        check_is_fitted(self, "network_")
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
