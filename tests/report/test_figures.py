"""Image grids drawn as one picture: each tile must show what imshow on its own axes would (its own colour range,
the image filling the tile), at the place the labels say."""

import matplotlib
import numpy as np
from matplotlib.colors import Normalize

from convlens.report import figures


def test_a_grey_tile_is_imshows_own_normalisation_and_colours():
    rng = np.random.default_rng(0)
    img = rng.integers(40, 200, (28, 28)).astype(np.uint8)  # not 0..255: per-image scaling shows
    expected = matplotlib.colormaps["gray_r"](Normalize()(img.astype(float)))  # what imshow does on its own axes
    np.testing.assert_allclose(figures._rgba_tile(img, 28, "gray_r", symmetric=False), expected, atol=1e-6)


def test_a_symmetric_tile_centres_zero_and_a_small_image_fills_its_tile_by_whole_factors():
    w = np.array([[-2.0, 0.0, 1.0], [0.5, 0.0, -1.0], [2.0, 0.25, 0.0]])
    tile = figures._rgba_tile(w, 15, "RdBu_r", symmetric=True)
    expected = matplotlib.colormaps["RdBu_r"](Normalize(-2.0, 2.0)(w))
    np.testing.assert_allclose(tile, np.kron(expected, np.ones((5, 5, 1))), atol=1e-6)
    assert np.allclose(figures._rgba_tile(np.zeros((3, 3)), 15, "gray_r", symmetric=True)[7, 7],
                       matplotlib.colormaps["gray_r"](0.5))  # zero is the middle colour


def test_rgb_images_are_shown_as_they_are_and_a_constant_image_takes_the_lowest_colour():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 255
    tile = figures._rgba_tile(rgb, 8, "gray_r", symmetric=False)
    assert np.allclose(tile[..., :3], [1, 0, 0]) and np.allclose(tile[..., 3], 1)
    flat = figures._rgba_tile(np.full((4, 4), 7, np.uint8), 4, "viridis", symmetric=False)
    assert np.allclose(flat, matplotlib.colormaps["viridis"](0.0))


def test_the_grid_is_one_picture_with_each_image_under_its_labels():
    rng = np.random.default_rng(1)
    rows = [[rng.random((28, 28)) for _ in range(3)], [rng.random((14, 14))]]  # ragged, two sizes
    fig = figures.image_grid(rows, ["first", "second"], None, col_labels=["a", "b", "c"], cmap="viridis")
    ax = fig.axes[0]
    assert len(fig.axes) == 1 and len(ax.images) == 1
    assert [t.get_text() for t in ax.get_yticklabels()] == ["first", "second"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    canvas = np.asarray(ax.images[0].get_array())
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            y, x = ax.get_yticks()[r], ax.get_xticks()[c]
            top, left = int(y - 13.5), int(x - 13.5)  # centres of 28 px tiles
            expected = matplotlib.colormaps["viridis"](Normalize()(img))
            if img.shape[0] == 14:
                expected = np.kron(expected, np.ones((2, 2, 1)))
            np.testing.assert_allclose(canvas[top:top + 28, left:left + 28], expected, atol=1e-6)
    y, x = ax.get_yticks()[1], ax.get_xticks()[1]
    assert np.all(canvas[int(y - 13.5):int(y + 14.5), int(x - 13.5):int(x + 14.5), 3] == 0)  # no image: empty


def test_a_flip_gallery_captions_each_image_and_says_when_a_row_is_empty():
    img = np.zeros((28, 28), np.uint8)
    fig = figures.flip_gallery([("lost", [img, img], ["#1 Coat", "#2 Bag"]), ("gained", [], [])], None, "t")
    ax = fig.axes[0]
    assert len(fig.axes) == 1
    assert [t.get_text() for t in ax.get_yticklabels()] == ["lost", "gained\n(none)"]
    assert sorted(t.get_text() for t in ax.texts) == ["#1 Coat", "#2 Bag"]


def test_nan_and_inf_are_left_out_of_the_range_and_transparent_as_imshow_masks_them():
    img = np.array([[0.0, 1.0], [np.nan, 2.0]])
    img_inf = np.array([[0.0, 1.0], [np.inf, 2.0]])
    expected = matplotlib.colormaps["viridis"](Normalize()(np.ma.masked_invalid(img)))  # imshow's masking
    for values in (img, img_inf):
        tile = figures._rgba_tile(values, 2, "viridis", symmetric=False)
        np.testing.assert_allclose(tile[[0, 0, 1], [0, 1, 1]], expected[[0, 0, 1], [0, 1, 1]], atol=1e-6)
        assert tile[1, 0, 3] == 0
    w = np.array([[-1.0, np.nan], [0.5, 1.0]])
    tile = figures._rgba_tile(w, 2, "RdBu_r", symmetric=True)
    np.testing.assert_allclose(tile[0, 0], matplotlib.colormaps["RdBu_r"](0.0), atol=1e-6)
    assert tile[0, 1, 3] == 0


def test_rgba_and_single_channel_images_and_label_counts_that_do_not_match_the_grid():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 1], rgba[..., 3] = 255, 128
    np.testing.assert_allclose(figures._rgba_tile(rgba, 2, "gray_r", symmetric=False)[0, 0], [0, 1, 0, 128 / 255])
    one = np.arange(4, dtype=np.uint8).reshape(2, 2, 1)
    np.testing.assert_allclose(figures._rgba_tile(one, 2, "gray_r", symmetric=False),
                               figures._rgba_tile(one[..., 0], 2, "gray_r", symmetric=False))
    fig = figures.image_grid([[np.zeros((4, 4))] * 2], ["a", "b"], None, col_labels=["x", "y", "z"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x", "y"]


def test_an_error_bar_whose_interval_was_cut_at_zero_reaches_zero():
    """A 95% CI cut to 0 (an accuracy's lower bound, convlens.stats.mean_ci) is falsy: the bar still reaches it,
    and only a missing interval (None) draws no bar."""
    fig = figures.grouped_bars(["original", "permuted"], {"CNN": [{"mean": 0.30, "ci95": [0.0, 0.9]},
                                                                  {"mean": 0.50, "ci95": [None, None]}]}, 2, "t", None)
    [container] = [c for c in fig.axes[0].containers if hasattr(c, "lines") and c.lines[2]]
    segments = container.lines[2][0].get_segments()  # one vertical error line per bar, in % of accuracy
    assert [tuple(map(float, seg[:, 1])) for seg in segments] == [(0.0, 90.0), (50.0, 50.0)]


def test_class_names_with_dollar_signs_are_drawn_as_written_also_in_a_background_drawer(tmp_path):
    """matplotlib reads "$...$" as a formula: a class folder named "cheap $\\foo$" failed the study (a parse error
    at savefig), and "$x$" would have shown as an italic x. The figures draw such names as they are written, and
    the formulas matplotlib writes itself (a log axis's ticks) stay formulas."""
    import pickle

    from convlens.experiments.plots import figure
    from convlens.figure_files import save_figure
    names = [r"cheap $\foo$", "$x$", "a $ b", "plain"]
    balance = figures.class_balance({"train": [3, 4, 5, 6]}, names, None)
    confusion = figures.confusion_matrices([np.eye(4, dtype=int)], ["$t$"], names, None)
    per_class = save_figure(figure("per_class", None, {"levels": [{"n": 2, "label": "$k$=3",
                                                                  "per_class_accuracy": [0.9] * 4}], "seeds": 2},
                                   names), None)  # as ExperimentResult.plot gives it
    for fig in (balance, confusion, per_class):
        fig.savefig(tmp_path / "here.png")
        pickle.loads(pickle.dumps(fig)).savefig(tmp_path / "drawer.png")  # as a background drawer gets it
        ax = fig.axes[0]
        # what matplotlib draws, and that it is no formula: its own reading of each label
        assert [t._preprocess_math(t.get_text()) for t in ax.get_xticklabels()] == [(n, False) for n in names]
    assert confusion.axes[0].title._preprocess_math(confusion.axes[0].title.get_text()) == ("$t$", False)
    legend = per_class.axes[0].get_legend().get_texts()[0]
    assert legend._preprocess_math(legend.get_text()) == ("$k$=3", False)
    histogram = figures.pixel_histogram([5, 0, 1000, 10_000], None)  # a log axis: matplotlib's formulas
    histogram.savefig(tmp_path / "log.png")
    ticks = [t for t in histogram.axes[0].get_yticklabels() if t.get_text()]
    assert ticks and all(t._preprocess_math(t.get_text())[1] for t in ticks)


def test_the_per_class_figure_draws_every_bar_and_keeps_its_legend_off_them():
    """The axis began at 50%: a class at 41% (the CNN on permuted pixels, Shirt) had no bar at all."""
    import matplotlib.pyplot as plt

    from convlens.experiments.plots import per_class_figure
    summary = {"levels": [{"label": "a", "n": 3, "per_class_accuracy": [0.9, 0.41, 0.8]},
                          {"label": "b", "n": 3, "per_class_accuracy": [0.95, 0.7, 0.85]}], "seeds": 3}
    fig = per_class_figure(summary, ["x", "y", "z"])
    ax = fig.axes[0]
    assert ax.get_ylim() == (30.0, 100.0)  # 41 - 5 = 36, down to the tens below it
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert not any(legend.overlaps(bar.get_window_extent()) for bar in ax.patches)
    plt.close(fig)
    high = {"levels": [{"label": "a", "n": 3, "per_class_accuracy": [0.9, 0.6, 0.8]}], "seeds": 3}
    fig = per_class_figure(high, ["x", "y", "z"])
    assert fig.axes[0].get_ylim() == (50.0, 100.0)  # every class above 55%: the usual axis
    plt.close(fig)
