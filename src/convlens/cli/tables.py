"""Tables the commands print: an experiment's statistics and runs grouped by configuration (rich, markup off)."""

from __future__ import annotations

import json

from rich.table import Table

from convlens.display import out
from convlens.stats import format_p


def pp(x: float | None, signed: bool = False) -> str:
    """A fraction in percent (points), two decimals; '-' when missing."""
    if x is None:
        return "-"
    return f"{x * 100:+.2f}" if signed else f"{x * 100:.2f}"


def mean_std(summary: dict) -> str:
    """'91.96 ± 0.32' from a mean_ci dict (fractions), or '-' without runs."""
    if not summary["n"]:
        return "-"
    return pp(summary["mean"]) + (f" ± {pp(summary['std'])}" if summary["std"] is not None else "")


def ci95(summary: dict) -> str:
    lo, hi = summary["ci95"]
    return f"{pp(lo)}..{pp(hi)}" if lo is not None else "-"


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
    table = Table("level", "n", "test acc % (mean ± std)", "95% CI", "test-set noise", "params", "train s", "ms/img",
                  title=f"{summary['experiment']}: recipe {recipe_label(summary['recipe'])}, {summary['seeds']} seeds")
    for lv in summary["levels"]:
        n = f"{lv['n']}" + (f" ({len(lv['failed'])} failed)" if lv["failed"] else "") + (
            f" ({lv['pending']} pending)" if lv["pending"] else "")
        secs, ms = lv["train_seconds"]["mean"], lv["inference_ms_per_image"]["mean"]
        noise = f"± {pp(lv['sampling_noise'])}" if lv["sampling_noise"] is not None else "-"
        table.add_row(lv["label"] + (" (reference)" if lv["label"] == summary["reference"] else ""), n,
                      mean_std(lv["test_accuracy"]), ci95(lv["test_accuracy"]), noise,
                      f"{lv['params']:,}" if lv["params"] else "-", f"{secs:.1f}" if secs is not None else "-",
                      f"{ms:.3f}" if ms is not None else "-")
    out.print(table)
    tests = Table("comparison", "n", "diff, pp [95% CI]", "p (Holm)", "verdict", "detectable, pp",
                  title="Comparisons (paired by seed; one Holm family)")
    for c in summary["comparisons"]:
        lo, hi = c["ci95"]
        diff = pp(c["diff"], True) + (f" [{pp(lo, True)}, {pp(hi, True)}]" if lo is not None else "")
        ph = format_p(c["p_holm"]) if c["p_holm"] is not None else "-"
        tests.add_row(c["label"], str(c["n"]), diff if c["n"] else "-", ph, c["verdict"].split(" (")[0],
                      "-" if c["mde"] is None else "> 100" if c["mde"] >= 1 else pp(c["mde"]))
    out.print(tests)
    for line in summary["conclusions"] + summary["warnings"]:  # warnings include a timing note when needed
        out.print(f"- {line}")


def print_comparison(comparison: dict) -> None:
    """Runs grouped by configuration: what differs between the groups, then per group n, mean ± std, CI."""
    differs = comparison["differs"]
    spec_keys = [k for k in differs if k.startswith("spec.")]
    named = differs
    if len(spec_keys) > 3:  # another architecture altogether: the model column names it (--json has every key)
        differs = [k for k in differs if k not in spec_keys]
        named = ["the architecture", *differs]
    table = Table("model", *differs, "n", "test acc % (mean ± std)", "95% CI", "per seed", "params", "train s",
                  title="Runs grouped by configuration (everything but the seed)")
    for g in comparison["groups"]:
        n = f"{g['n']}" + (f" (+{len(g['failed'])} failed)" if g["failed"] else "")
        secs = g["train_seconds"]["mean"]
        table.add_row(g["model"], *(json.dumps(g["settings"][k]) for k in differs), n, mean_std(g["test_accuracy"]),
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
                        f"{plan['power']:.0%} power (paired t-test at alpha {plan['alpha']:.3g}: 0.05 over the "
                        f"family's {plan['family']} comparisons)")
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
              f"({plan['seconds_per_seed']:.0f} s per seed for all levels, measured on {where}); with the runs "
              f"already finished, {plan['additional_seconds'] / 60:.1f} min more.")
    if plan["untimed_levels"]:
        out.print(f"Not timed (no finished run): {', '.join(plan['untimed_levels'])}; the time leaves them out.")
