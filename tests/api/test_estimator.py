"""ConvNetClassifier as scikit-learn sees it: every check of check_estimator (the array-API check is skipped by
scikit-learn itself unless SCIPY_ARRAY_API is set), and the digits read as rows or as images."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.utils.estimator_checks import check_estimator

from convlens import ConvNetClassifier


def test_every_scikit_learn_check_passes():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(ConvNetClassifier(epochs=2), on_fail=None)
    failed = {r["check_name"]: repr(r["exception"])[:300] for r in results if r["status"] == "failed"}
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert not failed, failed
    assert skipped <= {"check_array_api_input"}  # scikit-learn skips it itself unless SCIPY_ARRAY_API is set
    assert len(results) - len(skipped) >= 50


def test_digits_as_rows_and_as_images():
    X, y = load_digits(return_X_y=True)
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])[y]
    clf = ConvNetClassifier(epochs=4, seed=1).fit(X[:1400], names[:1400])
    predicted = clf.predict(X[1400:])
    assert set(predicted) <= set(names) and list(clf.classes_) == sorted(set(names))
    assert clf.score(X[1400:], names[1400:]) == pytest.approx(np.mean(predicted == names[1400:]))
    assert clf.score(X[1400:], names[1400:]) > 0.85
    proba = clf.predict_proba(X[1400:])
    assert proba.shape == (397, 10) and np.allclose(proba.sum(axis=1), 1)
    assert (clf.classes_[proba.argmax(axis=1)] == predicted).all()
    images = X.reshape(-1, 8, 8)  # the same pixels as images: the same network, the same answers
    as_images = ConvNetClassifier(epochs=4, seed=1).fit(images[:1400], names[:1400])
    assert (as_images.predict(images[1400:]) == predicted).all()
    with pytest.raises(ValueError, match="fitted on"):
        as_images.predict(np.zeros((2, 16, 16)))
    with pytest.raises(ValueError, match="0 sample"):  # as scikit-learn says it for rows
        as_images.predict(images[:0])


def test_fit_trains_in_the_layout_convlens_runs_use_on_the_cpu():
    """The fitted network equals one trained by hand with convlens' train() on NHWC (channels_last) tensors, the
    layout runs train in on the CPU (2x faster than NCHW for this fit); predictions are its softmax."""
    import torch

    from convlens.config import model_spec, train_config
    from convlens.data.dataset import DeviceSplits, validation_indices
    from convlens.models.network import Network
    from convlens.training import seed_everything, train
    X, y = load_digits(return_X_y=True)
    X, y = X[:600].reshape(-1, 8, 8), y[:600]
    clf = ConvNetClassifier(epochs=1, seed=3, device="cpu").fit(X, y)

    images = X[:, None].astype(np.float32)  # digits are 0..16 floats: standardised, not divided by 255
    mean, std = float(images.mean()), float(images.std())
    assert (clf.mean_, clf.scale_) == (mean, std)
    x = torch.from_numpy(((images - mean) / std).astype(np.float32)).contiguous(memory_format=torch.channels_last)
    labels = torch.as_tensor(y, dtype=torch.int64)
    cfg = train_config("cnn", "digits", recipe="fast", seed=3, epochs=1, device="cpu")
    train_idx, val_idx = validation_indices(600, cfg.recipe.val_fraction, 3)
    splits = DeviceSplits(x[train_idx].contiguous(memory_format=torch.channels_last), labels[train_idx],
                          x[val_idx].contiguous(memory_format=torch.channels_last), labels[val_idx], x[:0], labels[:0])
    seed_everything(3)
    spec = model_spec(cfg).model_copy(update={"in_channels": 1, "image_size": 8, "num_classes": 10})
    by_hand = Network(spec).to(memory_format=torch.channels_last)
    train(by_hand, splits, cfg.recipe, seed=3)

    fitted = clf.network_.state_dict()
    assert fitted.keys() == by_hand.state_dict().keys()
    assert all(torch.equal(fitted[k], v) for k, v in by_hand.state_dict().items())
    assert fitted["features.block2.conv.weight"].is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = torch.softmax(by_hand.eval()(x[:50]), dim=1).double().numpy()
    assert np.allclose(clf.predict_proba(X[:50]), expected, atol=1e-6)


def test_images_smaller_than_8x8_are_padded_with_zeros_like_rows():
    """README: inputs are zero-padded to at least 8 x 8 (three 2 x 2 poolings). Images of 4 x 4 train and predict
    exactly as the same images padded by hand; the shape fitted stays the one given."""
    rng = np.random.default_rng(0)
    small, y = rng.random((90, 4, 4)), np.arange(90) % 3
    padded = np.zeros((90, 8, 8))
    padded[:, :4, :4] = small
    clf = ConvNetClassifier(epochs=1, seed=2).fit(small, y)
    by_hand = ConvNetClassifier(epochs=1, seed=2).fit(padded, y)
    np.testing.assert_array_equal(clf.predict_proba(small), by_hand.predict_proba(padded))
    assert clf.image_shape_ == (1, 4, 4)
    with pytest.raises(ValueError, match=r"X has images of shape \(1, 5, 5\), but ConvNetClassifier was fitted on"):
        clf.predict(np.zeros((2, 5, 5)))  # padded, 5 x 5 would pass as 8 x 8: refused as given


def test_model_set_keys_that_the_data_decides_are_refused_not_ignored():
    X, y = np.random.default_rng(0).random((20, 8, 8)), np.arange(20) % 2
    with pytest.raises(ValueError, match="model_set: image_size, num_classes come from X and y; leave them out"):
        ConvNetClassifier(epochs=1, model_set={"num_classes": 5, "image_size": 28}).fit(X, y)
    with pytest.raises(ValueError, match="model_set: in_channels comes from X and y"):
        ConvNetClassifier(epochs=1, model_set={"in_channels": 3}).fit(X, y)
    assert ConvNetClassifier(epochs=1, model_set={"kernel_size": 5}).fit(X, y).spec_["kernel_size"] == 5


def test_complex_images_are_refused_as_scikit_learn_refuses_complex_rows():
    y = np.arange(10) % 2
    for X in (np.zeros((10, 8, 8), complex), np.zeros((10, 64), complex)):  # images here, rows by scikit-learn
        with pytest.raises(ValueError, match="Complex data not supported"):
            ConvNetClassifier(epochs=1).fit(X, y)


def test_a_batch_larger_than_the_fit_s_training_images_is_clipped_with_a_warning_as_scikit_learn_does():
    X, y = load_digits(return_X_y=True)
    X, y = X[:100], y[:100]
    # 100 samples, 10% held out for validation (round(100 * 0.1) = 10, by hand): 90 train
    with pytest.warns(UserWarning, match=r"batch_size=200 is larger than the 90 images this fit trains on"):
        ConvNetClassifier(epochs=1, seed=0, batch_size=200, val_fraction=0.1).fit(X, y)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exactly the training images: no warning
        ConvNetClassifier(epochs=1, seed=0, batch_size=90, val_fraction=0.1).fit(X, y)
