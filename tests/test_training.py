"""Training on real Fashion-MNIST: it learns, writes its artifacts, reloads to the same accuracy, is seeded."""

from __future__ import annotations

import json
import re

import pytest
import torch

from convlens.config import RECIPES, TrainConfig, resolve_recipe
from convlens.errors import TrainingDiverged, UsageError
from convlens.models.checkpoint import load_model
from convlens.run_files import read_metrics
from convlens.runs import evaluate_run, run_training
from convlens.training import evaluate, pick_device

SHORT = resolve_recipe("fast", {"epochs": 2})


@pytest.fixture(scope="module")
def cnn_run(fashion, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(model="cnn-32-64-128", recipe=SHORT, seed=5, train_subset=5_000, test_subset=2_000)
    return run_training(cfg, out, dataset=fashion)


def test_short_run_learns_well_above_chance(cnn_run):
    m = cnn_run.metrics
    assert m["status"] == "done"
    assert m["test_accuracy"] > 0.70  # chance is 0.10
    assert len(m["history"]) == 2 and m["history"][1]["train_loss"] < m["history"][0]["train_loss"]
    assert sum(map(sum, m["confusion_matrix"])) == 2_000
    diag = [row[i] for i, row in enumerate(m["confusion_matrix"])]
    assert sum(diag) / 2_000 == pytest.approx(m["test_accuracy"], abs=1e-6)


def test_run_directory_holds_model_config_and_metrics(cnn_run):
    d = cnn_run.directory
    assert {p.name for p in d.iterdir()} == {"model.safetensors", "config.json", "metrics.json", "predictions.npz"}
    config = json.loads((d / "config.json").read_text())
    assert config["model"]["spec"]["filters"] == [32, 64, 128]
    assert config["recipe"] == SHORT.model_dump(mode="json") and config["seed"] == 5
    assert config["data"]["n_train"] + config["data"]["n_val"] == 5_000 and config["data"]["n_test"] == 2_000
    assert {"versions", "device", "threads"} <= set(config["provenance"])
    metrics = read_metrics(d)
    for key in ("test_accuracy", "test_loss", "train_seconds", "per_class_accuracy", "confusion_matrix", "history"):
        assert key in metrics
    assert metrics["params"]["total"] == 241_546 and metrics["macs"] == 7_599_872


def test_reloaded_run_evaluates_to_the_same_accuracy(cnn_run, fashion):
    again = evaluate_run(cnn_run.directory, dataset=fashion)
    assert again["n_test"] == 2_000
    assert again["test_accuracy"] == pytest.approx(cnn_run.metrics["test_accuracy"], abs=1e-9)
    assert again["test_loss"] == pytest.approx(cnn_run.metrics["test_loss"], rel=1e-5)
    model, config = load_model(cnn_run.directory)
    assert not model.training and config["model"]["name"] == "cnn-32-64-128"


def _mlp_run(fashion, seed):
    cfg = TrainConfig(model="mlp-128-64", recipe=resolve_recipe("keras", {"epochs": 2}), seed=seed,
                      train_subset=3_000, test_subset=1_000)
    return run_training(cfg, None, dataset=fashion).metrics


def test_same_seed_gives_the_same_numbers_and_another_seed_does_not(fashion):
    a, b, c = _mlp_run(fashion, 11), _mlp_run(fashion, 11), _mlp_run(fashion, 12)
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    assert a["test_accuracy"] == b["test_accuracy"] and a["confusion_matrix"] == b["confusion_matrix"]
    assert a["history"][0]["train_loss"] != c["history"][0]["train_loss"]


def test_diverging_run_stops_at_its_step_and_is_recorded_as_failed(fashion, tmp_path):
    # Leaky-ReLU MLP with SGD at lr 10 overflows within a few steps (seed 0: NaN at step 6).
    cfg = TrainConfig(model="mlp-128-64", overrides={"activation": "leaky_relu"},
                      recipe=resolve_recipe("keras", {"epochs": 1, "optimizer": "sgd", "lr": 10.0}),
                      train_subset=2_000, test_subset=100)
    with pytest.raises(TrainingDiverged, match=r"loss is (nan|inf) at epoch 1, step \d+") as info:
        run_training(cfg, tmp_path, dataset=fashion)
    metrics = read_metrics(tmp_path)
    assert metrics["status"] == "failed" and metrics["epoch"] == 1 and metrics["step"] == info.value.step
    assert "diverged" in metrics["reason"]
    assert not (tmp_path / "model.safetensors").exists()


def test_early_stopping_keeps_the_best_validation_weights(fashion):
    recipe = resolve_recipe("keras", {"epochs": 6, "patience": 1, "lr": 5e-2})  # too high an LR: val loss rises
    cfg = TrainConfig(model="mlp-128-64", recipe=recipe, train_subset=2_000, test_subset=500)
    result = run_training(cfg, None, dataset=fashion)
    history = result.metrics["history"]
    if result.metrics["stopped_early_at"] is None:
        pytest.fail(f"expected early stopping with lr 5e-2; val losses {[h['val_loss'] for h in history]}")
    best = min(h["val_loss"] for h in history)
    assert history[-1]["val_loss"] > best  # the last epoch was worse than the best ...
    assert result.metrics["val_loss"] == pytest.approx(best, rel=1e-5)  # ... and the best weights were kept


def test_recipes_and_device_choice_validate():
    assert RECIPES["keras"].optimizer == "adam" and RECIPES["keras"].lr == 1e-3 and RECIPES["keras"].batch_size == 128
    assert RECIPES["keras"].schedule == "constant" and RECIPES["keras"].epochs == 15
    with pytest.raises(UsageError, match="unknown recipe 'slow'"):
        resolve_recipe("slow")
    with pytest.raises(UsageError, match="batch_size"):
        resolve_recipe("keras", {"batch_size": 0})
    assert pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA device"):
            pick_device("cuda")


def test_evaluate_counts_per_class_correctly():
    class Fixed(torch.nn.Module):  # predicts class 0 for everything
        def forward(self, x):
            return torch.tensor([[5.0, 0.0, 0.0]]).repeat(len(x), 1)
    y = torch.tensor([0, 0, 1, 2])
    result = evaluate(Fixed(), torch.zeros(4, 1, 2, 2), y, num_classes=3)
    assert result.accuracy == 0.5 and result.per_class_accuracy == [1.0, 0.0, 0.0]
    assert result.confusion_matrix == [[2, 0, 0], [1, 0, 0], [1, 0, 0]]


def test_one_cycle_schedule_warms_up_peaks_and_decays_for_any_length():
    from convlens.training import one_cycle_factor
    factors = [one_cycle_factor(s, 100, 0.25) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and max(factors) == pytest.approx(1.0) and factors.index(1.0) == 25
    assert all(a <= b for a, b in zip(factors[:25], factors[1:26]))  # rising
    assert all(a >= b for a, b in zip(factors[25:], factors[26:]))  # falling
    assert factors[-1] == pytest.approx(1e-3 + (1 - 1e-3) / 75)
    for total in (1, 2, 3, 4):  # tiny runs (torch's OneCycleLR divides by zero here)
        assert all(0 < one_cycle_factor(s, total, 0.25) <= 1 for s in range(total))


def test_hflip_mirrors_training_images_and_stays_seeded(fashion):
    recipe = resolve_recipe("keras", {"epochs": 1, "hflip": 0.5})
    cfg = TrainConfig(model="mlp-128-64", recipe=recipe, seed=4, train_subset=2_000, test_subset=200)
    a, b = (run_training(cfg, None, dataset=fashion).metrics for _ in range(2))
    plain = run_training(cfg.model_copy(update={"recipe": resolve_recipe("keras", {"epochs": 1})}), None,
                         dataset=fashion).metrics
    assert a["history"][0]["train_loss"] == b["history"][0]["train_loss"]  # seeded: same mirrors each time
    assert a["history"][0]["train_loss"] != plain["history"][0]["train_loss"]  # and the mirrors changed training


def test_the_overfit_gap_compares_eval_mode_with_eval_mode(cnn_run, fashion):
    """train_eval_accuracy is the final model, in eval mode, on a fixed training subset of the validation's size."""
    from convlens.data.dataset import to_device
    from convlens.training import train_subset_indices
    m = cnn_run.metrics
    last = m["history"][-1]
    assert all(r["train_eval_accuracy"] is not None for r in m["history"])
    model, config = load_model(cnn_run.directory)
    ds = fashion.subset(5_000, 2_000)
    # the same device and memory layout training used, so not even a rounding difference can flip an argmax
    splits = to_device(ds, torch.device("cpu"), val_fraction=SHORT.val_fraction, seed=5, channels_last=True)
    model = model.to(memory_format=torch.channels_last)
    idx = train_subset_indices(len(splits.y_train), len(splits.y_val), seed=5)
    assert len(idx) == config["data"]["n_val"] == 500 and len(set(idx.tolist())) == 500
    # recomputed by hand: argmax of the eval-mode logits against the labels, the per-epoch monitoring in the
    # training step's precision, the kept model's validation in fp32
    bf16 = m["precision"] == "bf16"
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        hits = (model(splits.x_train[idx]).argmax(1) == splits.y_train[idx]).sum().item()
        monitored_val_hits = (model(splits.x_val).argmax(1) == splits.y_val).sum().item()
    with torch.no_grad():
        val_hits = (model(splits.x_val).argmax(1) == splits.y_val).sum().item()
    assert last["train_eval_accuracy"] == hits / 500 and last["val_accuracy"] == monitored_val_hits / 500
    assert m["val_accuracy"] == val_hits / 500
    # the running accuracy (dropout on, averaged over an epoch of updates) is a different number
    assert last["train_accuracy"] != last["train_eval_accuracy"]


def test_provenance_names_the_cpu_model_and_metrics_carry_their_timing_conditions(cnn_run):
    import re
    from pathlib import Path
    config = json.loads((cnn_run.directory / "config.json").read_text())
    cpuinfo = Path("/proc/cpuinfo")
    device = config["provenance"]["device"]
    if cpuinfo.is_file():  # Linux: the model name as /proc/cpuinfo states it, not "x86_64"
        model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE).group(1).strip()
        assert device["name" if device["type"] == "cpu" else "cpu"] == model
    assert cnn_run.metrics["timing"] == {"device_type": device["type"], "device": device["name"],
                                         "threads": config["provenance"]["threads"], "workers": 1}


def test_stored_predictions_are_the_reloaded_models_argmax_on_the_test_images(cnn_run, fashion):
    import numpy as np

    from convlens.run_files import read_predictions
    predicted, label = read_predictions(cnn_run.directory)
    assert np.array_equal(label, fashion.test_labels[:2_000])
    model, _ = load_model(cnn_run.directory)
    model = model.to(memory_format=torch.channels_last)  # as evaluated after training
    x = torch.as_tensor(fashion.test_images[:2_000]).float().div(255).unsqueeze(1)
    with torch.no_grad():
        again = model(x.contiguous(memory_format=torch.channels_last)).argmax(1).numpy()
    assert np.array_equal(predicted, again)
    assert int((predicted == label).sum()) == cnn_run.metrics["test_correct"]


def _cpu_flags() -> set[str]:
    for line in open("/proc/cpuinfo"):
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def test_precision_auto_is_bf16_exactly_where_the_cpu_has_bf16_dot_products():
    from convlens.training import resolve_precision
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    native = {"avx512_bf16", "amx_tile"} & _cpu_flags()  # read here, from the kernel's list, not from torch
    assert resolve_precision("auto", cpu) == ("bf16" if native else "fp32")


def test_precision_auto_follows_each_cpu_check(monkeypatch):
    """Each of the two CPU features alone makes auto bf16; neither, or a torch without the checks, makes it fp32."""
    from convlens.training import resolve_precision
    cpu = torch.device("cpu")
    for bf16_dot, amx, expected in ((True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=bf16_dot: v, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        assert resolve_precision("auto", cpu) == expected, (bf16_dot, amx)
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert resolve_precision("auto", cpu) == "fp32"


def test_a_bf16_run_convolves_in_bf16_while_training_and_monitoring_and_in_fp32_when_evaluating(fashion):
    seen: list[tuple[bool, torch.dtype]] = []

    def record(module, inputs, output):  # every Conv2d reports the dtype it computed in
        if isinstance(module, torch.nn.Conv2d):
            seen.append((module.training, output.dtype))

    cfg = TrainConfig(model="cnn-16-32", recipe=resolve_recipe("fast", {"epochs": 1, "precision": "bf16"}), seed=0,
                      train_subset=1_000, test_subset=500)
    handle = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        result = run_training(cfg, None, dataset=fashion)
    finally:
        handle.remove()
    assert result.metrics["precision"] == "bf16" and result.metrics["test_accuracy"] > 0.5
    assert {dtype for training, dtype in seen if training} == {torch.bfloat16}
    # after the last training step: the epoch's monitoring (validation, train subset) in bf16, then the kept
    # model's validation, test and inference timing in fp32
    after = [dtype for training, dtype in seen[max(i for i, (t, _) in enumerate(seen) if t) + 1:]]
    switch = after.index(torch.float32)
    assert switch > 0 and set(after[:switch]) == {torch.bfloat16} and set(after[switch:]) == {torch.float32}
    assert all(p.dtype == torch.float32 for p in result.model.parameters())  # the weights stay fp32
    fp32_recipe = resolve_recipe("fast", {"epochs": 1, "precision": "fp32"})
    fp32 = run_training(cfg.model_copy(update={"recipe": fp32_recipe}), None, dataset=fashion)
    assert fp32.metrics["precision"] == "fp32"
    assert abs(fp32.metrics["test_accuracy"] - result.metrics["test_accuracy"]) < 0.1  # the same model, trained


def test_ema_keeps_the_moving_average_of_every_steps_weights(fashion):
    """The kept weights equal an EMA computed here from snapshots taken after every optimizer step of a run without
    it (the average does not change the trajectory)."""
    decay = 0.9
    cfg = TrainConfig(model="cnn-16-32", recipe=resolve_recipe("fast", {"epochs": 1}), seed=3, train_subset=1_000,
                      test_subset=200)
    snapshots: list[list[torch.Tensor]] = []

    def snapshot(optimizer, args, kwargs):
        snapshots.append([p.detach().clone() for group in optimizer.param_groups for p in group["params"]])

    from torch.optim.optimizer import register_optimizer_step_post_hook
    handle = register_optimizer_step_post_hook(snapshot)
    try:
        plain = run_training(cfg, None, dataset=fashion)
    finally:
        handle.remove()
    average = [w.clone() for w in snapshots[0]]
    for weights in snapshots[1:]:
        average = [decay * a + (1 - decay) * w for a, w in zip(average, weights)]
    ema = run_training(cfg.model_copy(update={"recipe": resolve_recipe("fast", {"epochs": 1, "ema": decay})}), None,
                       dataset=fashion)
    kept = list(ema.model.parameters())
    assert len(snapshots) == 8 and len(kept) == len(average)  # ceil(900 / 128) steps
    for k, a, last in zip(kept, average, plain.model.parameters()):
        torch.testing.assert_close(k, a, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(k, last)  # and not the last weights


def test_ema_averages_batchnorm_statistics_too(fashion):
    """With BatchNorm, the kept running means are the moving average of the live model's after every step (taken
    here from snapshots), not the live model's last ones nor the initial zeros."""
    from torch.optim.optimizer import register_optimizer_step_post_hook
    decay = 0.9
    cfg = TrainConfig(model="cnn-32-64-128-bn", recipe=resolve_recipe("fast", {"epochs": 1, "ema": decay}), seed=0,
                      train_subset=1_000, test_subset=200)
    live: list[torch.nn.Module] = []
    snapshots: list[list[torch.Tensor]] = []

    def capture(module, inputs, output):  # the live network is the first one trained (training mode)
        if isinstance(module, torch.nn.BatchNorm2d) and module.training and module not in live:
            live.append(module)

    def snapshot(optimizer, args, kwargs):  # BN statistics move in the forward pass of the step just taken
        snapshots.append([m.running_mean.detach().clone() for m in live])

    hooks = (torch.nn.modules.module.register_module_forward_hook(capture),
             register_optimizer_step_post_hook(snapshot))
    try:
        result = run_training(cfg, None, dataset=fashion)
    finally:
        for h in hooks:
            h.remove()
    average = [w.clone() for w in snapshots[0]]
    for means in snapshots[1:]:
        average = [decay * a + (1 - decay) * w for a, w in zip(average, means)]
    kept = [m.running_mean for m in result.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(kept) == len(average) == 3 and len(snapshots) == 8
    for k, a, last in zip(kept, average, snapshots[-1]):
        torch.testing.assert_close(k, a, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(k, last) and k.abs().sum() > 0


def test_epochs_are_monitored_in_the_step_precision_and_the_kept_model_is_measured_in_fp32(fashion):
    """precision=bf16 (explicit, so this runs on any CPU): the history's validation is the bf16 forward's, the
    metrics' validation and test are the fp32 forward's, each recomputed here by hand."""
    recipe = resolve_recipe("fast", {"epochs": 1, "precision": "bf16"})
    cfg = TrainConfig(model="mlp-128-64", recipe=recipe, seed=2, train_subset=2_000, test_subset=500)
    result = run_training(cfg, None, dataset=fashion)
    m, model = result.metrics, result.model.eval()
    from convlens.data.dataset import to_device
    splits = to_device(fashion.subset(2_000, 500), torch.device("cpu"), val_fraction=recipe.val_fraction, seed=2,
                       channels_last=True)

    def loss(x, y, bf16):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return torch.nn.functional.cross_entropy(model(x).float(), y).item()
    monitored, fp32 = loss(splits.x_val, splits.y_val, True), loss(splits.x_val, splits.y_val, False)
    assert monitored != fp32  # the two precisions do give different numbers here
    assert m["history"][-1]["val_loss"] == pytest.approx(monitored, rel=1e-6)
    assert m["val_loss"] == pytest.approx(fp32, rel=1e-6)
    assert m["test_loss"] == pytest.approx(loss(splits.x_test, splits.y_test, False), rel=1e-6)


@pytest.mark.parametrize("requested, words", [("tpu", "device 'tpu' is not one of auto, cpu, cuda (or cuda:N)"),
                                              ("CPU", "is not one of"), ("cuda:x", "is not one of"),
                                              ("", "is not one of")])
def test_a_device_that_is_not_one_is_a_usage_error_before_torch_sees_it(requested, words):
    from convlens.errors import UsageError
    from convlens.training import pick_device
    with pytest.raises(UsageError, match=re.escape(words)):
        pick_device(requested)


def test_cuda_n_is_taken_where_that_device_exists(monkeypatch):
    import torch

    from convlens.errors import UsageError
    from convlens.training import pick_device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(UsageError, match="device cuda:2: this machine has 2 CUDA device"):
        pick_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UsageError, match="device cuda:0 .--device cuda:0. was asked for but no CUDA device"):
        pick_device("cuda:0")
