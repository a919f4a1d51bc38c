"""Augmentation against images computed by hand (numpy slicing, from the same draws): whole-pixel shifts exact to the
bit in fp32 and bf16, on 1- and 3-channel images, contiguous and channels_last; flips then shifts; the draws seeded
and isolated from every other random stream; the spelling keeps the amount asked for."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convlens.augment import augment_batch, augment_seed, canonical, parse_augment


def _shifted_by_hand(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """image (C, H, W) with its content moved dx px right and dy px down; vacated px 0, no wrap-around."""
    _, h, w = image.shape
    out = np.zeros_like(image)
    out[:, max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = \
        image[:, max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    return out


def _draws(n: int, seed: int, most: int, flip: float = 0.0):
    """The generator's draws in augment_batch's order: the flips (when flipping), the angles, then (dx, dy)."""
    g = torch.Generator().manual_seed(seed)
    flips = (torch.rand(n, 1, 1, 1, generator=g) < flip).view(n).tolist() if flip else [False] * n
    torch.rand(n, generator=g)
    return flips, torch.randint(-most, most + 1, (n, 2), generator=g).tolist()


@pytest.mark.parametrize("channels, size, most", [(1, 28, 2), (3, 32, 4), (1, 8, 1), (1, 28, 14)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_whole_pixel_shifts_are_slicing_to_the_bit(channels, size, most, dtype, channels_last):
    x = torch.rand(48, channels, size, size, generator=torch.Generator().manual_seed(3)).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out = augment_batch(x, parse_augment(f"shift:{most}"), torch.Generator().manual_seed(7))
    assert out.dtype == dtype and out.shape == x.shape
    assert out.is_contiguous(memory_format=torch.channels_last if channels_last and channels > 1
                             else torch.contiguous_format)
    _, shifts = _draws(len(x), 7, most)
    images = x.float().numpy()
    for i, (dx, dy) in enumerate(shifts):
        np.testing.assert_array_equal(out[i].float().numpy(), _shifted_by_hand(images[i], dx, dy))
    assert {s for pair in shifts for s in pair} == set(range(-most, most + 1)) or most > 4  # every amount drawn


def test_a_shift_moves_content_the_stated_way_and_never_wraps():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 0, 4] = 1.0  # top-right corner: any shift right or up pushes it off the canvas
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(40):
        out = augment_batch(x, parse_augment("shift:1"), g)[0, 0]
        assert out.sum() in (0.0, 1.0) and out[:, 0].sum() == 0  # lost over the edge or moved, never wrapped
        seen.add(tuple(np.argwhere(out.numpy() == 1).ravel()) or None)
    assert seen == {(0, 3), (0, 4), (1, 3), (1, 4), None}


def test_flip_then_shift_from_the_same_draws():
    x = torch.rand(64, 3, 10, 10, generator=torch.Generator().manual_seed(1))
    out = augment_batch(x, parse_augment("shift:1,flip:0.5"), torch.Generator().manual_seed(9))
    flips, shifts = _draws(len(x), 9, 1, flip=0.5)
    assert 16 < sum(flips) < 48
    for i, (flip, (dx, dy)) in enumerate(zip(flips, shifts)):
        image = x[i].numpy()[:, :, ::-1] if flip else x[i].numpy()
        np.testing.assert_array_equal(out[i].numpy(), _shifted_by_hand(np.ascontiguousarray(image), dx, dy))


@pytest.mark.parametrize("text", ["rotate:10", "shift:2,rotate:10", "erase:0.5", "flip:0.5,erase:1"])
def test_every_term_keeps_dtype_and_layout_and_bf16_follows_fp32(text):
    x = torch.rand(16, 3, 12, 12, generator=torch.Generator().manual_seed(2))
    want = augment_batch(x, parse_augment(text), torch.Generator().manual_seed(4))
    half = x.bfloat16().contiguous(memory_format=torch.channels_last)
    got = augment_batch(half, parse_augment(text), torch.Generator().manual_seed(4))
    assert got.dtype == torch.bfloat16 and got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got.float(), want, atol=0.02, rtol=0)  # bf16's rounding of the pixels only


def test_the_draws_repeat_with_the_seed_differ_between_seeds_and_calls_and_touch_no_other_stream():
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    aug = parse_augment("shift:1,rotate:5,erase:0.5")
    torch.manual_seed(123)
    before = torch.get_rng_state()
    g = torch.Generator().manual_seed(augment_seed(0))
    first, second = augment_batch(x, aug, g), augment_batch(x, aug, g)  # next batch, or the next epoch
    assert torch.equal(torch.get_rng_state(), before)  # dropout's and hflip's stream untouched
    assert torch.equal(first, augment_batch(x, aug, torch.Generator().manual_seed(augment_seed(0))))
    assert not torch.equal(first, second)
    assert not torch.equal(first, augment_batch(x, aug, torch.Generator().manual_seed(augment_seed(1))))
    assert len({augment_seed(s) for s in range(50)} | set(range(50))) == 100


def test_augmenting_changes_no_other_draw_of_a_training_run(monkeypatch):
    """With augment_batch drawing as usual but returning the batch untouched, a run with shift:1 is the run without
    augmentation to the bit: the same validation split, batch order, dropout masks and losses."""
    import convlens.training as training
    from convlens.config import TrainConfig, resolve_recipe
    from convlens.runs import run_training
    original = training.augment_batch
    monkeypatch.setattr(training, "augment_batch", lambda x, aug, g: (original(x, aug, g), x)[1])

    def run(augment):
        recipe = resolve_recipe("fast", {"epochs": 2, "augment": augment, "precision": "fp32"})
        cfg = TrainConfig(model="mlp-128-64", dataset="digits", recipe=recipe, seed=3, train_subset=200,
                          test_subset=100)
        return run_training(cfg)
    plain, drawn = run("none"), run("shift:1")
    assert (plain.config["recipe"]["augment"], drawn.config["recipe"]["augment"]) == ("none", "shift:1")
    strip = lambda history: [{k: v for k, v in h.items() if k != "seconds"} for h in history]  # noqa: E731
    assert strip(drawn.metrics["history"]) == strip(plain.metrics["history"])
    assert drawn.metrics["test_accuracy"] == plain.metrics["test_accuracy"]


def test_the_spelling_keeps_the_amount_and_names_a_stray_comma():
    assert canonical("rotate:10.123456789") == "rotate:10.123456789"  # was rotate:10.1235, and ran as such
    assert parse_augment(canonical("flip:0.1234567")).flip == 0.1234567
    assert canonical("shift : 2, rotate:0.5") == "shift:2,rotate:0.5"
    for text in ("shift:1,", "shift:1,,flip:0.5"):
        with pytest.raises(ValueError, match="empty term"):
            parse_augment(text)
