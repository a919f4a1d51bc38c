"""The report's sentences follow their numbers: a claim appears only when the numbers beside it support it."""

from __future__ import annotations

from convlens.models.registry import create_model
from convlens.models.summary import summarize
from convlens.report.findings import design_findings, eda_findings


def _summary(name, **overrides):
    return {"summary": summarize(create_model(name, **overrides), name).to_dict()}


def test_the_receptive_field_sentence_follows_the_receptive_field():
    mlp = _summary("mlp")
    deep = design_findings(_summary("cnn"), mlp)[1]  # 3 blocks: 22x22 px after the last pooling, of 28
    assert "each unit covers 22x22 px, 79% of the image's side: distant parts of a garment meet only" in deep
    assert "sleeve to collar" not in deep
    wide = design_findings(_summary("cnn", kernel_size=7), mlp)[1]  # 7x7 kernels: 7+6*2+1*2... = 46 px >= 28
    assert "the whole image: one unit can relate distant parts of a garment (sleeve to collar)" in wide
    shallow = design_findings(_summary("cnn", depth=1), mlp)[1]  # one 3x3 conv + pool: 4x4 px
    assert "each unit covers 4x4 px, 14% of the image's side" in shallow


def test_the_weight_sharing_sentence_states_shares_that_support_it():
    usual = design_findings(_summary("cnn"), _summary("mlp"))[2]
    # conv 32-64-128 (3x3): 92,672 of 241,546 parameters (38.4%), 7,451,136 of 7,599,872 multiply-adds (98.0%)
    assert usual.startswith("Convolutions hold 38.4% of the 241,546 parameters and do 98.0% of the 7.6 M")
    assert usual.endswith("weight sharing makes them cheap in parameters and expensive in compute; the dense head "
                          "is the opposite.")


def _eda(**changes) -> dict:
    """The EDA numbers eda_findings reads, for 100 training images of two classes."""
    return {"train": {"n": 100, "shape": [28, 28]}, "test": {"n": 10, "shape": [28, 28]}, "dtype": "uint8",
            "pixel_range": {"train": [0, 255]}, "zero_pixel_fraction": 0.5,
            "normalisation": {"train_mean": 0.28, "train_std": 0.35},
            "per_class": [{"class": "a", "mean_brightness": 0.3}, {"class": "b", "mean_brightness": 0.2}],
            "duplicates": {"exact": 0, "near": 0, "max_rms": 0.05},
            "class_counts": {"train": [75, 25]}, "imbalance_ratio": {"train": 3.0}, **changes}


def test_balance_is_called_fair_only_when_it_is():
    eda = _eda()
    lines = eda_findings(eda)
    assert "3.00x the images of the smallest" in lines[1] and "fair summary metric" not in lines[1]
    assert "a difference of 0.1000 in mean brightness" in lines[3]
    balanced = eda_findings({**eda, "class_counts": {"train": [50, 50]}, "imbalance_ratio": {"train": 1.0}})
    assert balanced[1].startswith("Classes are exactly balanced") and "fair summary metric" in balanced[1]


def test_duplicates_are_said_to_possibly_inflate_accuracy_not_measured_to():
    eda = _eda(duplicates={"exact": 2, "near": 3, "max_rms": 0.05})
    # under "every number below was measured": the effect on accuracy is not, so it is not stated as a fact
    assert eda_findings(eda)[4] == ("2 test images are byte-identical to a training image and 3 more are near "
                                    "duplicates (RMS pixel difference <= 0.05 on the same 0-1 scale); a model may "
                                    "have seen those, so test accuracy may be slightly optimistic for them (not "
                                    "measured here).")
    clean = {**eda, "duplicates": {"exact": 0, "near": 0, "max_rms": 0.05}}
    assert eda_findings(clean)[4].endswith("the test set is clean of them.")
    assert eda_findings(eda)[3].endswith("in mean brightness, a cue that needs no notion of shape.")
