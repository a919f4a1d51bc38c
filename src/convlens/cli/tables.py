"""Tables the commands print: an experiment's statistics and runs grouped by configuration (rich, markup off)."""

from __future__ import annotations

import json
import math
import re

from rich.cells import cell_len
from rich.table import Table

from convlens.config import recipe_label
from convlens.display import ci95, comparisons_title, experiment_rows, mean_std, out, pp

# How a column gives way when the table is wider than the terminal. A LABEL (a level, a model name) wraps at
# spaces and folds within a word, so all of it stays readable. A NUMBER (an interval such as 66.47..68.47
# included) is never wrapped: a folded '109,3' / '86' reads as two numbers, and rich's ellipsis hides digits.
# WORDS (numbers with spaces, '67.47 ± 0.32') wrap only between words. A header wraps at spaces; when its words
# are what keeps the table too wide, it takes its shorter form (a column's third item), and only then does a word
# break, after a '-', '/', '.' or '_' in it (data.|train_|subset): never between two letters ('test-se' / 't').
LABEL, NUMBER, WORDS = "label", "number", "words"
LABEL_FLOOR = 8  # what a label keeps while the other columns can give way
_BREAKS = re.compile(r"[^-/._]*[-/._]+|[^-/._]+")  # a piece of a word, up to and with the punctuation after it


def _longest(texts, words: bool = False) -> int:
    return max((cell_len(part) for text in texts for line in text.splitlines()
                for part in (line.split() if words else [line])), default=0)


def _pieces(word: str) -> list[str]:
    """A word cut where a line may break inside it, after its punctuation: 'data.', 'train_', 'subset'. Punctuation
    alone stays with the piece before it ('seeds/)', not ')' on a line of its own)."""
    pieces: list[str] = []
    for piece in _BREAKS.findall(word):
        if pieces and not any(c.isalnum() for c in piece):
            pieces[-1] += piece
        else:
            pieces.append(piece)
    return pieces


def _longest_piece(header: str) -> int:
    return max((cell_len(piece) for word in header.split() for piece in _pieces(word)), default=0)


def wrapped_header(header: str, width: int) -> str:
    """``header`` in lines of at most ``width`` cells: at spaces, as rich wraps it, and a word longer than
    ``width`` broken after its punctuation (never between two letters; a piece still too long stays whole)."""
    lines, line = [], ""
    for word in header.split():
        for k, part in enumerate([word] if cell_len(word) <= width else _pieces(word)):
            joined = line + (" " if k == 0 and line else "") + part
            if line and cell_len(joined) > width:
                lines.append(line)
                line = part
            else:
                line = joined
    return "\n".join([*lines, line])


def _needs(columns: list[tuple], values: list[list[str]], headers: list[str], available: int, fold_all: bool,
           break_headers: bool) -> list[int]:
    """Each column's narrowest width: a number's or a word's value whole, a header's words whole (or, with
    ``break_headers``, its pieces, still never narrower than its values). Labels but the first fold down to 5 columns
    as far as the others need, then (``fold_all``) every label down to 3: the row's name, in the first column,
    keeps whole words until then."""
    need, floors = [], []
    for (_, kind, *_), v, header in zip(columns, values, headers):
        value_need = max(_longest(v, words=kind == WORDS), 1) if kind != LABEL else 3
        header_need = _longest_piece(header) if break_headers else _longest([header], words=True)
        own = value_need if kind != LABEL else min(_longest(v), LABEL_FLOOR)
        need.append(max(own, header_need, 1))
        floors.append(max(value_need, header_need))
    labels = [i for i, (_, kind, *_) in enumerate(columns) if kind == LABEL]
    if labels[:1] == [0]:
        need[0] = max(_longest(values[0], words=True), need[0])
    for shrinking, floor in (([i for i in labels if i], 5), *([(labels, 3)] if fold_all else [])):
        while sum(need) > available:
            over = [i for i in shrinking if need[i] > max(floor, floors[i])]
            if not over:
                break
            need[max(over, key=lambda i: need[i] - max(floor, floors[i]))] -= 1
    return need


def _fitted_widths(columns: list[tuple], rows: list[list[str]],
                   width: int) -> tuple[list[int] | None, list[str], bool]:
    """Content widths that fit the table into ``width`` without cutting a value or a header's word, the headers to
    print (each column's (header, kind) or (header, kind, shorter header)), and whether the outer cells keep their
    padding; widths None when it fits as it is.

    Rich alone does not do this: it narrows the widest wrappable columns and then every column evenly, so a
    number column loses digits while a label beside it could have folded once more, and a header folds
    mid-word."""
    overhead = 3 * len(columns) + 1  # a border per column and one more, a space either side of each cell
    values = [[row[i] for row in rows] for i in range(len(columns))]
    headers = [column[0] for column in columns]
    if sum(max(_longest([h]), _longest(v)) for h, v in zip(headers, values)) + overhead <= width:
        return None, headers, True
    available = width - overhead

    def needs(fold_all: bool = False, break_headers: bool = False) -> list[int]:
        return _needs(columns, values, headers, available, fold_all, break_headers)
    # Too wide: the labels but the row's name fold; then the headers take their shorter forms, one at a time, the
    # one that saves most first; then the row's name folds too; last, header words break after their punctuation.
    need = needs()
    shorter = sorted((i for i, column in enumerate(columns) if len(column) > 2 and column[2] != column[0]),
                     key=lambda i: _longest([columns[i][2]], words=True) - _longest([headers[i]], words=True))
    for i in shorter:
        if sum(need) <= available:
            break
        headers[i] = columns[i][2]
        need = needs()
    for fold_all, break_headers in ((True, False), (True, True)):
        if sum(need) > available:
            need = needs(fold_all, break_headers)
    pad_edge = sum(need) > available
    if pad_edge:  # without the space inside the table's two outer borders, before it is wider than the terminal
        available += 2
        need = needs(True, True)
    widths = need  # wider than the terminal when the numbers alone are: its lines wrap, but no digit is lost
    whole_words = [max(_longest(v, words=True), _longest([h], words=True), 1) for h, v in zip(headers, values)]
    want = [max(_longest(v), _longest([h], words=True), 1) for h, v in zip(headers, values)]
    # Spare columns go one at a time: first to the column furthest from whole words, then to the one closest to its
    # natural width (a column on one line each row reads better than two columns wrapped a little less).
    for goal, pick in ((whole_words, max), (want, min)):
        while sum(widths) < available:
            short = [i for i in range(len(widths)) if goal[i] > widths[i]]
            if not short:
                break
            widths[pick(short, key=lambda i: goal[i] - widths[i])] += 1
    return widths, [wrapped_header(h, w) for h, w in zip(headers, widths)], not pad_edge


def fitted_table(title: str, columns: list[tuple], rows: list[list[str]], width: int) -> Table:
    """A table of ``columns`` ((header, LABEL/NUMBER/WORDS), or with a shorter header third) for a console
    ``width`` columns wide: labels fold, numbers and header words stay whole."""
    widths, headers, pad_edge = _fitted_widths(columns, rows, width)
    overhead = 3 * len(columns) + (1 if pad_edge else -1)
    # rich would narrow a table wider than its console evenly, cutting numbers: its own width keeps them whole
    table = Table(title=title, width=None if widths is None else max(width, sum(widths) + overhead),
                  pad_edge=pad_edge)
    for i, header in enumerate(headers):
        table.add_column(header, overflow="fold", width=None if widths is None else widths[i])
    for row in rows:
        table.add_row(*row)
    return table


LEVEL_COLUMNS = {"level": LABEL, "n": LABEL, "test acc % (mean ± std)": WORDS, "95% CI": NUMBER,
                 "test-set SE": WORDS, "params": NUMBER, "train s": NUMBER, "ms/img": NUMBER}
TEST_COLUMNS = {"comparison": LABEL, "n": NUMBER, "diff, pp [95% CI]": WORDS, "p (Holm)": NUMBER,
                "verdict": WORDS, "detectable, pp": WORDS}
SHORTER = {"test-set SE": "SE"}  # a header's shorter form, for a terminal too narrow for its words


def _columns(kinds: dict[str, str]) -> list[tuple[str, str, str]]:
    return [(header, kind, SHORTER.get(header, header)) for header, kind in kinds.items()]


def print_experiment_table(summary: dict) -> None:
    """Per level n, mean ± std and 95% CI; then every comparison of the design with its paired test (one Holm
    family), the conclusions and any warning."""
    levels, tests = experiment_rows(summary)
    out.print(fitted_table(f"{summary['experiment']}: recipe {recipe_label(summary['recipe'])}, "
                           f"{summary['seeds']} seeds", _columns(LEVEL_COLUMNS),
                           [list(row.values()) for row in levels], out.width))
    out.print(fitted_table(f"Comparisons ({comparisons_title(summary['comparisons'])})",
                           _columns(TEST_COLUMNS) if tests else [("comparison", LABEL)],
                           [list(row.values()) for row in tests], out.width))
    for line in summary["conclusions"] + summary["warnings"]:  # warnings include a timing note when needed
        out.print(f"- {line}")


def _setting(value) -> str:
    """A setting as a table cell: a string as it is (sgd, not "sgd"), a missing one as -, the rest as JSON."""
    return "-" if value is None else value if isinstance(value, str) else json.dumps(value)


def _numeric(setting: str) -> bool:
    """Whether a setting's cell is a number or numbers ('600', '0.001', '[16, 32]'; '-' when unset), kept whole in
    the table as numbers are (a name, 'fashion-mnist', folds as a label)."""
    try:
        return setting == "-" or isinstance(json.loads(setting), (int, float, list))
    except ValueError:
        return False


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
    rows = []
    for g in comparison["groups"]:
        n = f"{g['n']}" + (f" (+{len(g['failed'])} failed)" if g["failed"] else "")
        secs = g["train_seconds"]["mean"]
        rows.append([g["model"], *(_setting(g["settings"].get(k)) for k in differs), n, mean_std(g["test_accuracy"]),
                     ci95(g["test_accuracy"]), ", ".join(f"{s}: {pp(a)}" for s, a in g["per_seed"].items()),
                     f"{g['params']:,}" if g["params"] else "-", f"{secs:.1f}" if secs is not None else "-"])
    # a setting's shorter header drops its part ('spec.kernel_size' -> 'kernel_size')
    settings = [(k, WORDS if all(_numeric(row[1 + i]) for row in rows) else LABEL, k.split(".", 1)[-1])
                for i, k in enumerate(differs)]
    columns = [("model", LABEL), *settings, ("n", LABEL), ("test acc % (mean ± std)", WORDS), ("95% CI", NUMBER),
               ("per seed", WORDS), ("params", NUMBER), ("train s", NUMBER)]
    out.print(fitted_table("Runs grouped by configuration (everything but the seed)", columns, rows, out.width))
    if len(comparison["groups"]) > 1:
        out.print(f"The groups differ in {', '.join(named)}. They are not tested against each other; to "
                  "test one factor, run it as an experiment (convlens experiment run).")
    if comparison["timing_note"]:
        out.print(comparison["timing_note"])
    if any(g["n"] < 2 for g in comparison["groups"]):
        out.print("Note: a configuration with one seed has no spread; a difference smaller than the seed-to-seed "
                  "spread means nothing.")


def duration(seconds: float) -> str:
    """'12.5 min', '45 s', '2.4 s', '0.031 s': under a minute in seconds, to two significant digits below 10 s (a
    pilot of tiny runs is not 'about 0.0 min')."""
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    if seconds >= 10 or seconds <= 0:
        return f"{seconds:.0f} s"
    return f"{seconds:.{max(1, 1 - math.floor(math.log10(seconds)))}f} s"


def print_plan(plan: dict, quiet: bool = False) -> None:
    """Seeds needed per comparison to detect the effect, then the seeds per level and the time they cost
    (``quiet``: that sentence alone)."""
    rows = [[c["label"], str(c["n"]), pp(c["std_diff"]) if c["std_diff"] is not None else "-",
             str(c["seeds_needed"]) if c["seeds_needed"] is not None else f"- ({c['reason']})"]
            for c in plan["comparisons"]]
    if not quiet:
        out.print(fitted_table(
            f"{plan['experiment']}: seeds to detect {plan['effect'] * 100:.2f} pp with "
            f"{plan['power']:.0%} power (paired t-test at alpha {plan['alpha']:.3g}: "
            + ("a family of one comparison)" if plan["family"] == 1 else
               f"0.05 over the family's {plan['family']} comparisons)"),
            [("comparison", LABEL), ("paired seeds", NUMBER), ("spread of differences, pp", NUMBER, "spread, pp"),
             ("seeds needed", WORDS)], rows, out.width))
    if plan["seeds"] is None:
        spread = [c for c in plan["comparisons"] if c["std_diff"] is not None]
        if not spread:
            out.print("No comparison shows a spread to plan from.")
        else:  # each comparison with a spread needs more seeds than seeds_needed tries (convlens.stats)
            out.print(f"An effect of {plan['effect'] * 100:.2f} pp is too small for this spread: no comparison "
                      f"detects it with {plan['power']:.0%} power with up to 10,000 seeds per level"
                      + (", and the others show no spread to plan from" if len(spread) < len(plan["comparisons"])
                         else "") + ". Plan for a larger effect (--effect).")
        return
    conditions = plan["timing"]["conditions"]
    where = (f"{conditions[0]['device']}, {conditions[0]['threads']} threads" if plan["timing"]["comparable"]
             else "mixed conditions, so only a rough guide")
    out.print(f"{plan['seeds']} seeds per level ({plan['levels']} levels): about {duration(plan['total_seconds'])} of "
              f"training ({duration(plan['seconds_per_seed'])} per seed for all levels, measured on {where}); with "
              f"the runs already finished, {duration(plan['additional_seconds'])} more.")
    if plan["untimed_levels"]:
        out.print(f"Not timed (no finished run): {', '.join(plan['untimed_levels'])}; the time leaves them out.")
