"""The report read from top to bottom by a student: every term defined before it is used, numbers in the units
of the text around them, shapes in the order the layer table uses, and commands that paste. Rendered from a quick
study's results.json (data/quick_results.json: a real one, its large arrays cut, which the template does not read)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from convlens.report.render import _render_markdown

RESULTS = json.loads((Path(__file__).parent / "data" / "quick_results.json").read_text())


@pytest.fixture(scope="module")
def md() -> str:
    return _render_markdown(RESULTS, html_facts=False)


def test_pp_holm_and_jump_are_explained_before_their_first_use(md):
    first_pp = re.search(r"\d pp\b", md).start()
    assert md.index("pp (percentage points") < first_pp
    first_holm = md.index("Holm")
    assert "Holm's correction raises their p-values" in md[first_holm - 200:first_holm + 200]
    assert md.index("*jump* is how many input pixels apart") < md.index("jump", md.index("*jump*") + 7)
    assert md.index("*jump*") < md.index("-px jump")


def test_the_section_4_test_description_starts_a_sentence(md):
    test = RESULTS["experiments"]["cnn-vs-mlp"]["test"]
    assert test[0].islower()  # as the experiments write it, inside their own sentences
    assert f"the data order. {test[0].upper()}{test[1:]}." in md


def test_feature_map_shapes_are_also_given_as_the_layer_table_prints_them(md):
    table = {layer["name"]: layer["output_shape"] for layer in RESULTS["design"]["summary"]["layers"]}
    paragraph = md[md.index("### Feature maps"):md.index("![Feature maps]")]
    for block in RESULTS["probes"]["feature_maps"]["blocks"]:
        as_table = "x".join(map(str, table[f"features.{block['name']}.pool"]))  # the block's output, H x W x C
        assert as_table in paragraph
        assert "x".join(map(str, block["shape"])) in paragraph  # C x H x W, as the figure labels it
    assert "channels x height x width" in paragraph and "height x width x channels" in paragraph


def test_the_shift_0_check_is_in_percentage_points_like_the_table_below_it(md):
    v = RESULTS["probes"]["shift"]["shift0_max_abs_difference_from_test_accuracy"]
    assert f"(largest difference over the runs {v * 100:.2f} pp)" in md


def test_the_equivariance_list_is_its_own_block(md):
    first = RESULTS["probes"]["assumptions"]["findings"]["equivariance"][0]
    lines = md.splitlines()
    at = lines.index(f"- {first}")
    assert lines[at - 1] == ""  # glued to the paragraph, Markdown readers other than markdown-it join them


def test_the_runs_trained_now_are_counted_as_they_were():
    md = _render_markdown(RESULTS, html_facts=False)
    runs = RESULTS["study"]["runs"]
    assert runs["trained_now"] == runs["distinct"]
    assert f"{runs['distinct']} distinct runs" in md and "(all trained by this invocation)" in md
    reused = copy.deepcopy(RESULTS)
    reused["study"]["runs"]["trained_now"] = 4
    md = _render_markdown(reused, html_facts=False)
    assert "(4 trained by this invocation, the rest reused from earlier ones)" in md
    assert "data-key" in _render_markdown(reused, html_facts=True)


def test_gained_and_lost_are_defined_before_the_first_sentence_that_counts_them():
    md = _render_markdown(RESULTS, html_facts=False)
    definition = md.find("counts the test images A gets right and B gets wrong (gained), and those B gets right and "
                         "A gets wrong (lost)")
    counts = [m.start() for m in re.finditer(r"\d+ gained, \d+ lost", md)]
    assert counts and definition != -1 and definition < counts[0]
