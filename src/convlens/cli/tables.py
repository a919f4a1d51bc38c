"""Tables the commands print: an experiment's statistics and runs grouped by configuration (rich, markup off)."""

from __future__ import annotations

import json

from rich.table import Table

from convlens.display import ci95, comparisons_title, experiment_rows, mean_std, out, pp


def changes(values: dict) -> str:
    return "".join(f" {k}={v}" for k, v in values.items())


def recipe_label(recipe: dict) -> str:
    """'keras' or 'keras epochs=1': the recipe's name plus what differs from the named recipe."""
    from convlens.config import RECIPES
    named = RECIPES.get(recipe["name"])
    base = named.model_dump(mode="json") if named else {}
    return recipe["name"] + changes({k: v for k, v in recipe.items() if base.get(k) != v})


def print_experiment_table(summary: dict) -> None:
    """Per level n, mean ± std and 95% CI; then every comparison of the design with its paired test (one Holm
    family), the conclusions and any warning."""
    levels, tests = experiment_rows(summary)
    table = Table(*levels[0], title=f"{summary['experiment']}: recipe {recipe_label(summary['recipe'])}, "
                                    f"{summary['seeds']} seeds")
    for row in levels:
        table.add_row(*row.values())
    out.print(table)
    comparisons = Table(*(tests[0] if tests else ["comparison"]),
                        title=f"Comparisons ({comparisons_title(summary['comparisons'])})")
    for row in tests:
        comparisons.add_row(*row.values())
    out.print(comparisons)
    for line in summary["conclusions"] + summary["warnings"]:  # warnings include a timing note when needed
        out.print(f"- {line}")


def _setting(value) -> str:
    """A setting as a table cell: a string as it is (sgd, not "sgd"), a missing one as -, the rest as JSON."""
    return "-" if value is None else value if isinstance(value, str) else json.dumps(value)


def print_comparison(comparison: dict) -> None:
    """Runs grouped by configuration: what differs between the groups, then per group n, mean ± std, CI."""
    differs, groups = comparison["differs"], comparison["groups"]
    spec_keys = [k for k in differs if k.startswith("spec.")]
    named = differs
    if len(spec_keys) > 3:  # another architecture altogether: the model column names it (--json has every key) ...
        # ... but a setting that differs between groups of one kind (two CNNs beside an MLP) keeps its column
        kinds = {g["settings"].get("spec.kind") for g in groups}
        varies = {k for k in spec_keys if k != "spec.kind" and any(
            len({json.dumps(g["settings"].get(k)) for g in groups if g["settings"].get("spec.kind") == kind}) > 1
            for kind in kinds)}
        differs = [k for k in differs if k not in spec_keys or k in varies]
        named = ["the architecture", *differs]
    table = Table("model", *differs, "n", "test acc % (mean ± std)", "95% CI", "per seed", "params", "train s",
                  title="Runs grouped by configuration (everything but the seed)")
    for g in comparison["groups"]:
        n = f"{g['n']}" + (f" (+{len(g['failed'])} failed)" if g["failed"] else "")
        secs = g["train_seconds"]["mean"]
        table.add_row(g["model"], *(_setting(g["settings"].get(k)) for k in differs), n, mean_std(g["test_accuracy"]),
                      ci95(g["test_accuracy"]), ", ".join(f"{s}: {pp(a)}" for s, a in g["per_seed"].items()),
                      f"{g['params']:,}" if g["params"] else "-", f"{secs:.1f}" if secs is not None else "-")
    out.print(table)
    if len(comparison["groups"]) > 1:
        out.print(f"The groups differ in {', '.join(named)}. They are not tested against each other; to "
                  "test one factor, run it as an experiment (convlens experiment run).")
    if comparison["timing_note"]:
        out.print(comparison["timing_note"])
    if any(g["n"] < 2 for g in comparison["groups"]):
        out.print("Note: a configuration with one seed has no spread; a difference smaller than the seed-to-seed "
                  "spread means nothing.")


def print_plan(plan: dict) -> None:
    """Seeds needed per comparison to detect the effect, then the seeds per level and the time they cost."""
    table = Table("comparison", "paired seeds", "spread of differences, pp", "seeds needed",
                  title=f"{plan['experiment']}: seeds to detect {plan['effect'] * 100:.2f} pp with "
                        f"{plan['power']:.0%} power (paired t-test at alpha {plan['alpha']:.3g}: "
                        + ("a family of one comparison)" if plan["family"] == 1 else
                           f"0.05 over the family's {plan['family']} comparisons)"))
    for c in plan["comparisons"]:
        table.add_row(c["label"], str(c["n"]), pp(c["std_diff"]) if c["std_diff"] is not None else "-",
                      str(c["seeds_needed"]) if c["seeds_needed"] is not None else f"- ({c['reason']})")
    out.print(table)
    if plan["seeds"] is None:
        out.print("No comparison shows a spread to plan from.")
        return
    minutes = plan["total_seconds"] / 60
    conditions = plan["timing"]["conditions"]
    where = (f"{conditions[0]['device']}, {conditions[0]['threads']} threads" if plan["timing"]["comparable"]
             else "mixed conditions, so only a rough guide")
    out.print(f"{plan['seeds']} seeds per level ({plan['levels']} levels): about {minutes:.1f} min of training "
              f"({plan['seconds_per_seed']:.{0 if plan['seconds_per_seed'] >= 10 else 1}f} s per seed for all levels, "
              f"measured on {where}); with the runs "
              f"already finished, {plan['additional_seconds'] / 60:.1f} min more.")
    if plan["untimed_levels"]:
        out.print(f"Not timed (no finished run): {', '.join(plan['untimed_levels'])}; the time leaves them out.")
