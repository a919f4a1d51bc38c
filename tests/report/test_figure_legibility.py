"""What a student reading the report's figures needs: nothing drawn over the data or over other text, the units of
what the colours and numbers show, and every reference line the text reads the data against. Checked on the
drawn figure (matplotlib's own layout of each text and patch), not on the code that placed them."""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg

from convlens.report import figures


def _boxes(fig, artists):
    canvas = FigureCanvasAgg(fig)  # a saved figure is closed in pyplot: lay it out as savefig does
    canvas.draw()
    renderer = canvas.get_renderer()
    return [a.get_window_extent(renderer) for a in artists]


def test_the_class_balance_legend_covers_no_bar_and_not_the_title():
    # balanced classes: every bar reaches the top, where a legend inside the axes sat on the right-hand bars
    fig = figures.class_balance({"train": [6000] * 10, "test": [1000] * 10}, [f"class {i}" for i in range(10)], None)
    ax = fig.axes[0]
    legend, title = _boxes(fig, [ax.get_legend(), ax.title])
    bars = _boxes(fig, ax.patches)
    assert len(bars) == 20
    assert not any(legend.overlaps(b) for b in bars)
    assert not legend.overlaps(title)


def test_flip_gallery_captions_do_not_run_into_each_other():
    img = np.zeros((28, 28), np.uint8)
    caption = "#577 T-shirt/top\nmodel=mlp-128-64: Shirt\nmodel=cnn-32-64-128: T-shirt/top"  # as the study writes
    rows = [("model=mlp-128-64 right,\nmodel=cnn-32-64-128 wrong", [img] * 8, [caption] * 8),  # the study's labels
            ("model=cnn-32-64-128 right,\nmodel=mlp-128-64 wrong", [img] * 8, [caption] * 8)]
    fig = figures.flip_gallery(rows, None, "t")
    texts = fig.axes[0].texts
    boxes = _boxes(fig, texts)
    assert len(boxes) == 16
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    # side by side, neighbours keep at least one em of the captions' font apart (5 px at 100 dpi read as one line)
    em = texts[0].get_fontsize() * fig.dpi / 72
    for row in (boxes[:8], boxes[8:]):
        assert min(b.x0 - a.x1 for a, b in zip(row, row[1:])) >= em


def test_confusion_matrices_say_what_their_numbers_are_and_share_one_true_axis():
    m = np.zeros((3, 3), int)
    m[0] = [199, 1, 0]  # 0.5% rounds to "0": a blank cell, as every other cell under 1%
    m[1] = [0, 100, 100]  # 50% and 50%
    m[2] = [0, 0, 7]
    fig = figures.confusion_matrices([m, m], ["a", "b"], ["x", "y", "z"], None)
    left, right = fig.axes
    shown = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in left.texts}
    expected = {(i, j): f"{100 * m[i, j] / m[i].sum():.0f}" for i in range(3) for j in range(3)
                if 100 * m[i, j] / m[i].sum() >= 1}
    assert shown == expected  # (0, 1), 0.5%, is not "0"
    texts = [t.get_text() for t in fig.texts] + [left.title.get_text()]
    assert any("% of each true class" in t for t in texts)
    assert left.get_ylabel() == "true" and right.get_ylabel() == ""
    assert not any(t.get_text() for t in right.get_yticklabels())
    # nothing of the right panel's labels lies over the left panel's matrix
    matrix_left = _boxes(fig, [left.images[0]])[0]
    assert not any(matrix_left.overlaps(b) for b in _boxes(fig, [right.yaxis.label, *right.get_yticklabels()]))
    _assert_clear_of_the_panels(fig)


def _assert_clear_of_the_panels(fig):
    """The figure's own title overlaps no panel, panel title or tick label."""
    [title] = _boxes(fig, [fig._suptitle])
    for ax in fig.axes:
        others = _boxes(fig, [ax, ax.title, *ax.get_xticklabels(), *ax.get_yticklabels()])
        assert not any(title.overlaps(b) for b in others if b.width and b.height)


def _equivariance():
    stat = lambda v: {"mean": v, "ci95": [v - 0.01, v + 0.01]}  # noqa: E731
    return {"stages": ["block1 conv", "block1 pool", "dense1"], "jumps": [1, 2, None], "shifts": [1, 2],
            "exact": [[True, True], [False, True], [False, False]], "seeds": [0, 1, 2], "images": 16,
            "similarity": [[stat(1.0), stat(1.0)], [stat(0.9), stat(1.0)], [stat(0.95), stat(0.8)]],
            "unrelated": [stat(0.55), stat(0.58), stat(0.30)]}


def test_the_equivariance_figure_draws_the_floor_the_text_reads_it_against():
    eq = _equivariance()
    shift = {"shifts": [0, 1, 2], "curves": {"MLP": [{"mean": 0.8, "ci95": [0.79, 0.81]}] * 3}}
    fig = figures.equivariance_figure(eq, shift)
    left = fig.axes[0]
    floors = [line for line in left.get_lines() if "different images" in line.get_label()]
    assert len(floors) == 1
    np.testing.assert_allclose(floors[0].get_ydata(), [0.55, 0.58, 0.30])
    shifts = [line for line in left.get_lines() if line.get_label().startswith("shift")]
    # shifts 1 and 3 often coincide: told apart by more than colour
    assert len({(line.get_marker(), str(line.get_linestyle())) for line in shifts}) == len(shifts)


def test_the_receptive_field_figure_says_which_square_is_which():
    block = {"block": "block1", "erf": np.ones((28, 28)).tolist(), "theoretical_window": [[12, 15], [12, 15]],
             "theoretical_size": 4, "side90": {"mean": 4.0, "ci95": [4.0, 4.0]}, "centre": [13.5, 13.5]}
    fig = figures.receptive_field_figure({"cnn": {"blocks": [block], "seeds": [0]}, "images": 8,
                                          "kernel_sizes": None})
    title = fig._suptitle.get_text()
    assert "dashed cyan" in title and "theoretical" in title and "solid white" in title and "90%" in title
    _assert_clear_of_the_panels(fig)
    # and the figure draws them so: the dashed patch is the theoretical window, the solid one the 90% square
    dashed, solid = fig.axes[0].patches
    assert dashed.get_linestyle() == "--" and dashed.get_width() == 4
    assert solid.get_linestyle() in ("-", "solid") and solid.get_width() == 4
