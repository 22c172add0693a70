"""Crop geometry on an arange tensor (each pixel holds its own coordinates), flips, normalisation."""

from __future__ import annotations

import pytest
import torch

from actionbook.data.transforms import (
    center_crop,
    five_crop,
    hflip,
    multiscale_random_crop,
    normalize,
    resize,
    ten_crop,
    to_tchw,
)

T, C, H, W = 2, 1, 6, 8


def grid() -> torch.Tensor:
    """(T, C, H, W) with value 100 t + 10 row + col: every pixel names its position."""
    t, r, c = torch.meshgrid(torch.arange(T), torch.arange(H), torch.arange(W), indexing="ij")
    return (100 * t + 10 * r + c).unsqueeze(1)  # (T, 1, H, W)


def window(top: int, left: int, h: int, w: int) -> torch.Tensor:
    t, r, c = torch.meshgrid(torch.arange(T), torch.arange(top, top + h), torch.arange(left, left + w), indexing="ij")
    return (100 * t + 10 * r + c).unsqueeze(1)


def test_center_crop():
    assert torch.equal(center_crop(grid(), 4), window(1, 2, 4, 4))  # top (6-4)//2, left (8-4)//2
    assert torch.equal(center_crop(grid(), (3, 5)), window(1, 1, 3, 5))  # (6-3)//2 = 1, (8-5)//2 = 1


def test_ten_crop_pixels():
    crops = ten_crop(grid(), 4)
    assert crops.shape == (10, T, C, 4, 4)
    expected = [window(0, 0, 4, 4), window(0, 4, 4, 4), window(2, 0, 4, 4), window(2, 4, 4, 4), window(1, 2, 4, 4)]
    for i, e in enumerate(expected):
        assert torch.equal(crops[i], e), f"crop {i}"
        assert torch.equal(crops[5 + i], e.flip(-1)), f"mirror {i}"
    # the top-left crop's mirror starts with column 3 and ends with column 0
    assert crops[5, 0, 0, 0].tolist() == [3, 2, 1, 0]
    assert torch.equal(five_crop(grid(), 4), crops[:5])


def test_crop_too_big():
    with pytest.raises(ValueError, match="does not fit"):
        five_crop(grid(), 7)


def test_multiscale_random_crop_windows():
    x = grid()  # short side 6
    # scale 1 only, no aspect change: a 6x6 window at one of the 5 positions, no resize needed
    allowed = [window(0, 0, 6, 6), window(0, 2, 6, 6), window(0, 1, 6, 6)]  # left 0, 2 (corners), 1 (centre)
    seen = set()
    g = torch.Generator().manual_seed(0)
    for _ in range(40):
        y = multiscale_random_crop(x, 6, scales=(1,), max_distort=0, generator=g)
        match = [i for i, a in enumerate(allowed) if torch.equal(y, a)]
        assert match, "crop is not a corner or centre window"
        seen.add(match[0])
    assert seen == {0, 1, 2}
    # TSN scales: output size fixed, window sides from int(6 * s) = 6, 5, 4, 3
    y = multiscale_random_crop(x.float(), (4, 5), generator=torch.Generator().manual_seed(3))
    assert y.shape == (T, C, 4, 5)
    a = multiscale_random_crop(x, 3, generator=torch.Generator().manual_seed(7))
    b = multiscale_random_crop(x, 3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and a.dtype == x.dtype


def test_hflip_flow_uint8():
    # a stack of L = 2 flow fields, x/y interleaved: channels x0 y0 x1 y1
    v = torch.tensor([0, 128, 200, 255], dtype=torch.uint8)
    x = v.view(1, 1, 4).expand(4, 2, 4).clone()  # (2L, H, W)
    y = hflip(x, flow=True)
    assert y[0, 0].tolist() == [0, 55, 127, 255]  # x-flow: mirrored, then 255 - v
    assert y[2, 1].tolist() == [0, 55, 127, 255]
    assert y[1, 0].tolist() == [255, 200, 128, 0]  # y-flow: only mirrored
    assert y[3, 1].tolist() == [255, 200, 128, 0]
    assert torch.equal(hflip(y, flow=True), x)  # flipping twice is the identity
    assert hflip(x)[0, 0].tolist() == [255, 200, 128, 0]  # without flow=True nothing is inverted


def test_hflip_flow_float_and_per_frame_layout():
    x = torch.randn(3, 2, 4, 5)  # (T, 2, H, W): channel 0 = x-flow
    y = hflip(x, flow=True)
    assert torch.equal(y[:, 0], -x[:, 0].flip(-1))
    assert torch.equal(y[:, 1], x[:, 1].flip(-1))
    crops = ten_crop(x, 3, flow=True)
    assert torch.equal(crops[5, :, 0], -crops[0, :, 0].flip(-1))


def test_normalize():
    x = torch.full((2, 3, 2, 2), 255, dtype=torch.uint8)
    y = normalize(x, mean=[0.5, 0.25, 0.0], std=[0.5, 0.25, 2.0])
    assert torch.allclose(y[0, :, 0, 0], torch.tensor([1.0, 3.0, 0.5]))
    z = normalize(torch.zeros(1, 4, 1, 1), mean=[0.5], std=[0.5])  # broadcast over a flow stack
    assert torch.equal(z, torch.full((1, 4, 1, 1), -1.0))
    with pytest.raises(ValueError, match="channels"):
        normalize(x, mean=[0.5, 0.5], std=[1, 1])


def test_to_tchw_and_resize():
    frames = torch.zeros(2, 6, 8, 3, dtype=torch.uint8)
    frames[..., 1] = 7
    x = to_tchw(frames)
    assert x.shape == (2, 3, 6, 8) and x[0, 1, 0, 0] == 7
    assert resize(x, 3).shape == (2, 3, 3, 4)  # short side 3, aspect kept
    assert resize(x, (5, 5)).shape == (2, 3, 5, 5)
    assert resize(x, 3)[0, 1].unique().tolist() == [7]  # a flat image stays flat
