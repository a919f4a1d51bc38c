"""All seeds of one configuration trained as one batched model (torch.func.vmap) give each seed's separate run,
to floating-point rounding: the batched path is forced here on the CPU, where it is not the default."""

from __future__ import annotations

import os

import pytest
import torch

from convlens.batched_seeds import not_batchable
from convlens.config import TrainConfig, model_spec, resolve_recipe
from convlens.models.network import Network
from convlens.runs import run_training, run_training_batched


def _configs(model, seeds, train_subset=900, **recipe):
    recipe = resolve_recipe("fast", {"epochs": 2, "batch_size": 64, "precision": "fp32", **recipe})
    overrides = {"dropout": 0.3} if model == "cnn-16-32" else {}  # its preset has none: the masks are tested
    return [TrainConfig(model=model, overrides=overrides, recipe=recipe, seed=s, train_subset=train_subset,
                        test_subset=300) for s in seeds]


@pytest.mark.parametrize("model, recipe, subset", [
    ("cnn-16-32", {}, 900),  # dropout in the head: each seed's masks from its own stream; 2 epochs of 13 steps
    ("cnn-16-32", {"hflip": 0.5, "augment": "shift:2"}, 900),  # mirrors (the global stream), shifts (their own)
    # BatchNorm's running statistics, updated in place under vmap. 1 epoch of 3 steps: this network is chaotic at
    # the rounding level (a 1e-7 change of its initial weights moves its separate run's weights by 4% in 26 steps).
    ("cnn-32-64-128-bn", {"optimizer": "sgd", "lr": 0.005, "fused": False, "epochs": 1}, 143),
    ("mlp-128-64", {"label_smoothing": 0.0}, 900),
])
def test_each_seed_of_a_batched_run_equals_its_separate_run(fashion, tmp_path, monkeypatch, model, recipe, subset):
    if "-bn" in model:
        # Both in NCHW: on the CPU, BatchNorm's channels_last backward is ~500x less exact than its NCHW one
        # (relative error 8e-5 vs 1.4e-7 against float64 for one layer, measured in torch 2.13): a difference of
        # the separate run's arithmetic, not of batching.
        import convlens.runs
        monkeypatch.setattr(convlens.runs, "uses_channels_last", lambda device: False)
    seeds = [0, 3, 7]
    cfgs = _configs(model, seeds, subset, **recipe)
    separate = [run_training(c, tmp_path / f"separate{c.seed}", dataset=fashion) for c in cfgs]
    batched = run_training_batched(cfgs, [tmp_path / f"batched{c.seed}" for c in cfgs], dataset=fashion)
    for one, many in zip(separate, batched):
        a, b = one.metrics, many.metrics
        assert b["status"] == "done" and b["timing"]["batched_seeds"] == 3 and "batched_seeds" not in a["timing"]
        for ea, eb in zip(a["history"], b["history"], strict=True):
            # rounding grows through the updates (seen: 2.6e-4 in the second epoch's validation loss)
            assert eb["train_loss"] == pytest.approx(ea["train_loss"], rel=1e-3)
            assert eb["val_loss"] == pytest.approx(ea["val_loss"], rel=1e-3)
            n_val = one.config["data"]["n_val"]
            assert abs(eb["val_accuracy"] - ea["val_accuracy"]) <= 2 / n_val  # an argmax or two may flip on a tie
        assert b["test_loss"] == pytest.approx(a["test_loss"], rel=1e-3)
        assert abs(b["test_correct"] - a["test_correct"]) <= 2
        # The weights: the two runs disagree by less than 1% of how far training moved them from their (shared)
        # initialisation. Not elementwise: Adam divides each gradient by its running RMS, so where a gradient is
        # near zero the grouped convolutions' different rounding reaches single weights (seen: 1.2e-4 of 0.22).
        torch.manual_seed(one.config["seed"])
        start = dict(Network(model_spec(cfgs[0])).named_parameters())  # what _prepare_run builds for this seed
        moved = torch.cat([(p - start[n]).flatten() for n, p in one.model.named_parameters()]).norm()
        apart = torch.cat([(q - p).flatten() for (n, p), q in zip(one.model.named_parameters(),
                                                                  many.model.parameters())]).norm()
        assert apart < 0.01 * moved, (float(apart), float(moved))
        for (name, p), q in zip(one.model.named_buffers(), many.model.buffers()):  # BatchNorm's statistics
            assert torch.allclose(q.double(), p.double(), rtol=1e-3, atol=1e-6), name
        assert (many.directory / "model.safetensors").is_file() and (many.directory / "predictions.npz").is_file()
    # and the seeds did differ from each other (each got its own initialisation, data and masks)
    assert len({r.metrics["history"][0]["train_loss"] for r in batched}) == 3


def test_a_wrong_stream_would_be_caught(fashion, tmp_path):
    """The comparison above can fail: two seeds batched with each other's dropout streams differ from their runs."""
    cfgs = _configs("cnn-16-32", [0, 3])
    separate = run_training(cfgs[0], None, dataset=fashion).metrics
    from convlens import batched_seeds
    original = batched_seeds.seed_generator
    try:
        batched_seeds.seed_generator = lambda seed, device: original(seed + 1, device).manual_seed(seed + 1)
        swapped = run_training_batched(cfgs, [None, None], dataset=fashion)[0].metrics
    finally:
        batched_seeds.seed_generator = original
    assert swapped["history"][0]["train_loss"] != pytest.approx(separate["history"][0]["train_loss"], rel=1e-3)


def test_early_stopping_and_weight_averages_are_not_batched():
    assert not_batchable(resolve_recipe("fast")) is None
    assert "early stopping" in not_batchable(resolve_recipe("fast", {"patience": 2}))
    assert "ema" in not_batchable(resolve_recipe("fast", {"ema": 0.99}))


def test_an_experiment_trains_each_levels_seeds_as_one_model_when_asked(tmp_path, capsys):
    import json

    import yaml

    from convlens.cli import main
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "tiny", "model": "cnn-16-32", "recipe": "fast", "recipe_set": {"epochs": 1},
        "factor": {"name": "kernel_size", "levels": [3, 5]}, "seeds": 2, "dataset": "digits"}))
    out = tmp_path / "out"
    assert main(["experiment", "run", str(spec), "--out", str(out), "--batch-seeds", "--quiet"]) == 0
    metrics = [json.loads(p.read_text()) for p in sorted(out.glob("runs/*/seed*/metrics.json"))]
    assert len(metrics) == 4 and all(m["status"] == "done" and m["timing"]["batched_seeds"] == 2 for m in metrics)
    # the seeds of a level were trained together, the levels apart: their first losses differ pairwise
    assert len({m["history"][0]["train_loss"] for m in metrics}) == 4
    # in worker processes, one level per worker: the same runs as in this process (threads differ: 1e-4)
    capsys.readouterr()
    assert main(["experiment", "run", str(spec), "--out", str(tmp_path / "w2"), "--batch-seeds", "--workers", "2"]) == 0
    assert "with 2 worker(s), each level's seeds as one batched model" in capsys.readouterr().out
    in_workers = [json.loads(p.read_text()) for p in sorted((tmp_path / "w2").glob("runs/*/seed*/metrics.json"))]
    assert [m["timing"]["batched_seeds"] for m in in_workers] == [2] * 4
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    assert {(m["timing"]["workers"], m["timing"]["threads"]) for m in in_workers} == {(2, threads)}  # in the pool
    for here, there in zip(metrics, in_workers):
        assert there["history"][0]["train_loss"] == pytest.approx(here["history"][0]["train_loss"], rel=1e-4)
        assert abs(there["test_correct"] - here["test_correct"]) <= 1  # one image may flip with other threads
    assert main(["experiment", "run", str(spec), "--out", str(tmp_path / "ray"), "--batch-seeds", "--backend",
                 "ray", "--quiet"]) == 2
    assert "--batch-seeds" in capsys.readouterr().err


def test_seed_groups_join_only_the_seeds_of_one_configuration(tmp_path):
    from convlens.experiments.local import Job, seed_groups
    plain = _configs("cnn-16-32", [0, 1])
    stopping = _configs("cnn-16-32", [0, 1], patience=2)
    jobs = [Job("k=3", c.seed, c, tmp_path / "k=3" / f"seed{c.seed}") for c in plain]
    jobs += [Job("k=5", c.seed, c.model_copy(update={"overrides": {"kernel_size": 5}}), tmp_path / "k=5" / f"seed{c.seed}")
             for c in plain]
    jobs += [Job("p", c.seed, c, tmp_path / "p" / f"seed{c.seed}") for c in stopping]
    groups = seed_groups(jobs)
    assert [[(j.level, j.seed) for j in g] for g in groups] == [
        [("k=3", 0), ("k=3", 1)], [("k=5", 0), ("k=5", 1)], [("p", 0)], [("p", 1)]]


def test_batched_seeds_is_the_default_on_cuda_only_on_the_local_backend_without_gpu_fractions(monkeypatch):
    from convlens.errors import UsageError
    from convlens.experiments.run import make_backend
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not make_backend().batch_seeds and make_backend(batch_seeds=True).batch_seeds
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert make_backend().batch_seeds and not make_backend(batch_seeds=False).batch_seeds
    assert not make_backend(gpus_per_run=0.25).batch_seeds
    with pytest.raises(UsageError, match="--gpus-per-run"):
        make_backend(gpus_per_run=0.25, batch_seeds=True)


def test_the_stacked_loss_leaves_no_state_behind_so_torch_compile_gives_the_eager_numbers():
    """StackedModels.loss sets each dropout's mask for one call and clears it: a mask left on a module (a vmap
    tensor) is a side effect torch.compile cannot replay. The compiled function must give the eager losses."""
    from convlens.batched_seeds import StackedModels
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(Network(model_spec(TrainConfig(model="cnn-16-32", overrides={"dropout": 0.3}))))
    stacked = StackedModels(models, label_smoothing=0.1, precision="fp32")
    generator = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 8, 1, 28, 28, generator=generator), torch.randint(0, 10, (2, 8), generator=generator)
    masks = stacked.stack_masks([stacked.draw_masks(8, generator) for _ in models])
    assert len(masks) == 1 and masks[0].shape == (2, 8, stacked.widths[0])
    eager, _ = stacked.loss(stacked.params, stacked.buffers, x, y, *masks)
    try:
        compiled, _ = torch.compile(stacked.loss, backend="aot_eager")(stacked.params, stacked.buffers, x, y, *masks)
    finally:
        torch._dynamo.reset()  # no compiled code left to count against other tests' recompile limits
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-6)
    # and each seed's loss is its own model's, run on its own images with its masks standing in for dropout
    for s, model in enumerate(models):
        model.train()
        features = model.features(x[s])
        head = dict(model.head.named_children())
        out = features
        for name, layer in head.items():
            out = out * masks[0][s] if isinstance(layer, torch.nn.Dropout) else layer(out)
        expected = torch.nn.functional.cross_entropy(out, y[s], label_smoothing=0.1)
        torch.testing.assert_close(eager[s], expected, rtol=1e-5, atol=1e-6)
