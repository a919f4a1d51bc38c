"""Render report.md and report.html from OUT/results.json and the figures it names. Nothing is computed here.

One Markdown template (templates/report.md.j2) is the single source of the text. report.md links the
figures; report.html is the same Markdown converted by markdown-it, with every image embedded as a base64
data URI and the CSS inline, so the one file opens offline in any browser. Every number drawn from
results.json goes through ``fact`` and in the HTML carries its source (``data-key``), which the tests use to
check that the report says what the results say.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
from markdown_it import MarkdownIt

from convlens.atomic_files import atomic_write_text
from convlens.errors import UsageError, user_path
from convlens.stats import ALPHA, format_p, p_equals

TEMPLATES = Path(__file__).parent / "templates"
# The layout of results.json this template reads; the study writes it, a different one is refused.
RESULTS_FORMAT = "convlens-study/5"


def _num(fmt: str) -> Callable[[Any], str]:
    return lambda v: "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


FORMATS: dict[str, Callable[[Any], str]] = {
    "pct": lambda v: _num("{:.2f}%")(None if v is None else v * 100),
    "pp": lambda v: _num("{:+.2f} pp")(None if v is None else v * 100),
    "std_pp": lambda v: _num("{:.2f} pp")(None if v is None else v * 100),
    "int": _num("{:,}"),
    "p": lambda v: "n/a" if v is None else format_p(v),
    "p_eq": lambda v: "p=n/a" if v is None else p_equals(v),
    "s": _num("{:.1f} s"),
    "min": lambda v: _num("{:.1f} min")(None if v is None else v / 60),
    "ms": _num("{:.3f} ms"),
    "f4": _num("{:.4f}"),
    "f3": _num("{:.3f}"),
    "str": lambda v: str(v),
}


def lookup(results: dict, key: str) -> Any:
    """results["a"]["b"][0] for key "a.b.0"."""
    value: Any = results
    for part in key.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def same_data_args(results: dict) -> str:
    """What a command the report suggests needs to run on this study's dataset (" --dataset NAME"; nothing for
    Fashion-MNIST, the default), for pasting into a shell. Shown inside a Markdown code span, so a name that could
    end the span or read as HTML there (a backtick, <, &, a newline) is given as a placeholder instead."""
    dataset = ((results.get("study") or {}).get("config") or {}).get("dataset") or "fashion-mnist"
    if dataset == "fashion-mnist":
        return ""
    quoted = shlex.quote(str(dataset))
    safe = quoted.isprintable() and not set(quoted) & set("`<>&\"")  # a newline would end the span too
    return markupsafe.Markup(f" --dataset {quoted}") if safe else " --dataset DATASET"


def _render_markdown(results: dict, *, html_facts: bool) -> str:
    # For report.html every value from results.json is HTML-escaped (a results.json from elsewhere must not put
    # a <script> into the page); report.md keeps the text as it is.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=html_facts)

    def fact(key: str, fmt: str = "str") -> str:
        text = FORMATS[fmt](lookup(results, key))
        if not html_facts:
            return text
        return markupsafe.Markup(f'<span class="fact" data-key="{html.escape(key)}" data-format="{fmt}">'
                                 f'{html.escape(text)}</span>')

    env.globals.update(fact=fact, fmt=lambda v, f: FORMATS[f](v), r=results, value=lambda key: lookup(results, key),
                       same_data=same_data_args(results), alpha=f"{ALPHA:g}")
    return env.get_template("report.md.j2").render()


def _embed_images(body: str, root: Path) -> str:
    inside = root.resolve()

    def data_uri(match: re.Match) -> str:
        if not match.group(1).lower().endswith(".png"):  # left as a link, the page would not be self-contained
            raise UsageError(f"the report names a figure that is not a .png file: {match.group(1)}")
        path = root / html.unescape(match.group(1))
        # results.json names the figures; a study copied from elsewhere must not make the report embed host
        # files ("../../home/me/secret.png", an absolute path, a symlink out of the study directory).
        if not path.resolve().is_relative_to(inside):
            raise UsageError(f"the report names a figure outside the study directory {root}: {match.group(1)}")
        if not path.is_file():
            raise UsageError(f"the report names a figure that does not exist: {path}")
        return f'src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}"'
    return re.sub(r'<img src="(?!data:)([^"]*)"', lambda m: "<img " + data_uri(m), body)


def render_report(out: str | Path) -> tuple[Path, Path]:
    """Write OUT/report.md and OUT/report.html from OUT/results.json."""
    out = user_path(out, "study directory")
    if out.name == "results.json" and out.is_file():
        raise UsageError(f"give the study's directory ({out.parent}), not its results.json")
    results_path = out / "results.json"
    if not results_path.is_file() and (out / "experiment.json").is_file():  # an experiment has tables, not a report
        raise UsageError(f"{out} is an experiment, not a study: 'convlens experiment table {shlex.quote(str(out))}' "
                         "prints its results "
                         "(summary.json, runs.csv and plots/ are in it)")
    if not results_path.is_file():
        raise UsageError(f"{results_path} not found: run 'convlens study --out {shlex.quote(str(out))}' first")
    try:
        results = json.loads(results_path.read_text())
    except json.JSONDecodeError as e:
        raise UsageError(f"{results_path} is not valid JSON ({e.msg} at line {e.lineno})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{results_path} is not valid JSON (not UTF-8 text)") from None
    if not isinstance(results, dict) or results.get("format") != RESULTS_FORMAT:
        found = results.get("format") if isinstance(results, dict) else None
        raise UsageError(f"{results_path} has format {found!r}, this convlens renders {RESULTS_FORMAT!r}; run "
                         f"'convlens study --out {out}' again (finished runs are reused)")
    try:
        markdown = _render_markdown(results, html_facts=False)
        html_markdown = _render_markdown(results, html_facts=True)
    except (jinja2.UndefinedError, KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        # A results.json edited by hand or cut short: say so instead of a template traceback.
        raise UsageError(f"{results_path} is incomplete or altered ({type(e).__name__}: {e}); run 'convlens study "
                         f"--out {out}' again (finished runs are reused)") from None
    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    body = _embed_images(md.render(html_markdown), out)
    page = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True).get_template(
        "page.html.j2").render(body=jinja2.utils.markupsafe.Markup(body), title="convlens study report")
    atomic_write_text(out / "report.md", markdown)
    atomic_write_text(out / "report.html", page)
    return out / "report.md", out / "report.html"
