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
