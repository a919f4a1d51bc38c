"""Experiment specs: validation with one-line errors, level resolution, and the one-factor check."""

from __future__ import annotations

import re

import pytest

from convlens.errors import UsageError
from convlens.experiments import BUILTIN_EXPERIMENTS, load_spec, parse_spec
from convlens.experiments.spec import one_factor_diff, reference_level, resolve_levels

BASE = dict(name="k", model="cnn-32-64-128", factor=dict(name="kernel_size", levels=[3, 5]))


def spec(**changes):
    return parse_spec({**BASE, **changes})


@pytest.mark.parametrize("changes, message", [
    (dict(factor=dict(name="kernal_size", levels=[3, 5])), "unknown factor 'kernal_size'; valid factors: .*kernel_size"),
    (dict(factor=dict(name="kernel_size", levels=[])), "levels: List should have at least 2 items"),
    (dict(factor=dict(name="kernel_size", levels=[3, 5], reference=7)), "reference 7 is not among the levels"),
    (dict(factor=dict(name="kernel_size", levels=[3, 3])), "lists a level twice"),
    (dict(seeds=0), "seeds: Input should be greater than or equal to 1"),
    (dict(recipe="slow"), "unknown recipe 'slow'"),
    (dict(colour="red"), "colour: Extra inputs are not permitted"),
    (dict(second_factor=dict(name="kernel_size", levels=[3, 5])), "repeats the factor"),
    (dict(model="seed000-cnn"), "unknown model 'seed000-cnn'; valid models: cnn, mlp"),
    (dict(factor=dict(name="model", levels=["cnn", "cnn-32-64-128"])), "lists a level twice"),  # an alias is its preset
    (dict(factor=dict(name="model", levels=["mlp", "seed000-mlp"])), "unknown model 'seed000-mlp'"),
])
def test_invalid_specs_fail_with_one_line(changes, message):
    with pytest.raises(UsageError, match=message) as info:
        spec(**changes)
    assert "\n" not in str(info.value)


def test_levels_that_build_no_valid_model_name_the_level():
    with pytest.raises(UsageError, match=r"level kernel_size=0: .*kernel_size"):
        resolve_levels(spec(factor=dict(name="kernel_size", levels=[3, 0])))


@pytest.mark.parametrize("changes, message", [
    (dict(set={"dropuot": 0.3}), "set: unknown override 'dropuot' (did you mean 'dropout'?)"),
    (dict(set={"dropout": 2}), "set: invalid override for cnn-32-64-128: dropout: Input should be less than 1"),
    (dict(recipe_set={"epochs": -1}), "recipe_set: invalid training option: epochs: Input should be greater than"),
    (dict(recipe_set={"precision": "fp16"}), "recipe_set: invalid training option: precision: Input should be"),
])
def test_a_mistake_in_the_base_names_the_key_the_spec_file_holds_not_a_level(changes, message):
    """It said 'level kernel_size=3: ...', as though the first level were wrong, for a mistake that is in every level."""
    with pytest.raises(UsageError) as info:
        resolve_levels(spec(**changes))
    assert str(info.value).startswith(message)


def test_an_option_for_every_level_is_named_as_the_option_not_as_recipe_set_or_a_level():
    from convlens.experiments.spec import with_changes
    with pytest.raises(UsageError) as info:  # the CLI names the field as typed: 'invalid training option: --epochs: '
        with_changes(spec(), epochs=0)
    assert str(info.value).startswith("invalid training option: epochs: Input should be greater than or equal to 1")


def test_one_factor_check_accepts_the_factor_and_its_coupled_fields():
    s = spec(factor=dict(name="depth", levels=[1, 3], reference=3))
    diff = one_factor_diff(s, resolve_levels(s))
    assert diff["depth=1"] == {"spec.depth": [3, 1], "spec.filters": [[32, 64, 128], [32]]}
    assert diff["depth=3"] == {}


def test_one_factor_check_rejects_levels_that_differ_elsewhere():
    s = spec(factor=dict(name="kernel_size", levels=[3, {"kernel_size": 5, "dropout": 0.5}]))
    with pytest.raises(UsageError, match=r"level dropout=0.5,kernel_size=5 differs from the reference kernel_size=3 "
                                         r"in more than the factor: spec.dropout: 0.3 -> 0.5"):
        one_factor_diff(s, resolve_levels(s))
    s = spec(factor=dict(name="recipe.lr", levels=[0.001, {"recipe.lr": 0.01, "recipe.epochs": 3}]))
    with pytest.raises(UsageError, match=r"recipe.epochs: 4 -> 3"):
        one_factor_diff(s, resolve_levels(s))


def test_grid_of_two_factors_and_its_reference():
    s = spec(second_factor=dict(name="pool", levels=["max", "avg"]), seeds=2)
    levels = resolve_levels(s)
    assert [lv.label for lv in levels] == ["kernel_size=3 pool=max", "kernel_size=3 pool=avg",
                                           "kernel_size=5 pool=max", "kernel_size=5 pool=avg"]
    assert reference_level(s, levels).label == "kernel_size=3 pool=max"
    diff = one_factor_diff(s, levels)
    assert diff["kernel_size=5 pool=avg"] == {"spec.kernel_size": [3, 5], "spec.pool": ["max", "avg"]}
    assert levels[3].for_seed(1).seed == 1 and levels[3].config.overrides == {"kernel_size": 5, "pool": "avg"}


def test_builtins_cover_what_the_seeds_ran_and_pass_the_check():
    assert set(BUILTIN_EXPERIMENTS) == {"kernel-size", "depth", "filters", "pooling", "batch-norm", "cnn-vs-mlp",
                                       "locality", "weight-sharing", "augmentation"}
    for s in BUILTIN_EXPERIMENTS.values():
        one_factor_diff(s, resolve_levels(s))
        assert s.seeds == 3
    assert [lv.label for lv in resolve_levels(BUILTIN_EXPERIMENTS["kernel-size"])] == [
        "kernel_size=3", "kernel_size=5", "kernel_size=7"]


def test_load_spec_from_name_or_yaml(tmp_path):
    assert load_spec("kernel-size", BUILTIN_EXPERIMENTS).factor.levels == [3, 5, 7]
    path = tmp_path / "e.yaml"
    path.write_text("name: e\nmodel: cnn-16-32\nfactor: {name: pool, levels: [max, none]}\nseeds: 4\n")
    loaded = load_spec(path, BUILTIN_EXPERIMENTS)
    assert loaded.seeds == 4 and loaded.factor.reference_label == "pool=max"
    path.write_text("name: [unclosed\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        load_spec(path, BUILTIN_EXPERIMENTS)
    with pytest.raises(UsageError, match="neither a built-in experiment"):
        load_spec("kernel_size", BUILTIN_EXPERIMENTS)  # a misspelt name: the built-ins are listed
    for missing in (tmp_path / "missing.yaml", "missing.YML", "specs/kernel"):  # meant as a file
        with pytest.raises(UsageError, match=f"^experiment spec file '{re.escape(str(missing))}' not found$"):
            load_spec(missing, BUILTIN_EXPERIMENTS)
    with pytest.raises(UsageError, match="is a directory"):
        load_spec(tmp_path, BUILTIN_EXPERIMENTS)


def test_pixels_is_a_data_factor_and_the_check_allows_only_it():
    spec = BUILTIN_EXPERIMENTS["locality"]
    levels = resolve_levels(spec)
    assert [lv.config.pixels for lv in levels] == ["original", "permuted", "original", "permuted"]
    diff = one_factor_diff(spec, levels)
    assert diff["model=mlp-128-64 pixels=permuted"] == {"data.pixels": ["original", "permuted"]}
    bad = parse_spec({"name": "p", "model": "cnn-32-64-128", "factor": {"name": "pixels", "levels": ["original", "scrambled"]}})
    with pytest.raises(UsageError, match="level pixels=scrambled: pixels: Input should be 'original' or 'permuted'"):
        resolve_levels(bad)


def test_model_levels_and_the_base_are_recorded_by_their_full_names():
    s = spec(model="mlp", factor=dict(name="model", levels=["mlp", "cnn"], reference="mlp"))
    assert s.model == "mlp-128-64" and s.factor.levels == ["mlp-128-64", "cnn-32-64-128"]
    assert [lv.label for lv in resolve_levels(s)] == ["model=mlp-128-64", "model=cnn-32-64-128"]
    assert s.factor.reference_label == "model=mlp-128-64"


def test_a_level_that_trains_what_the_reference_trains_is_refused():
    s = spec(factor=dict(name="recipe.label_smoothing", levels=[0.0, 0]))  # two labels, one configuration
    with pytest.raises(UsageError, match="recipe.label_smoothing=0 trains exactly what the reference"):
        one_factor_diff(s, resolve_levels(s))


def test_a_misspelled_key_is_named_with_the_one_it_should_be():
    # it was "factor: Field required; and 1 more": the typo itself hidden in the "1 more"
    typo = {k: v for k, v in BASE.items() if k != "factor"} | {"factr": BASE["factor"]}
    with pytest.raises(UsageError) as info:
        parse_spec(typo)
    assert str(info.value).endswith("factr: Extra inputs are not permitted (is it factor, which is missing?)")
    two = typo | {"seeds": 0}  # a second, unrelated mistake is still counted
    with pytest.raises(UsageError, match=r"\(is it factor, which is missing\?\); and 1 more$"):
        parse_spec(two)
