"""Spatial crops and flips for video tensors, the same crop for every frame of a clip.

Videos here are tensors of shape (T, C, H, W) (`to_tchw` turns `read_video`'s (T, H, W, 3)
into that), uint8 or float. A crop that moved from frame to frame would invent motion, so
every function picks one window and applies it to all T frames.

What the papers use:

* **10-crop** (Res-LSTM Sec. 3.2, Eq. 4-5): the 4 corners and the centre, then the same
  5 mirrored; the features of the 10 are averaged. `ten_crop` returns them in that order:
  top-left, top-right, bottom-left, bottom-right, centre, then their horizontal mirrors.
* **5-crop** (Relational LSTM Sec. 3.4): corners and centre, 4 temporal groups x 5 = 20 tests.
* **Multi-scale random crop** (TSN, used by the Relational LSTM for training): a window
  whose sides are drawn from {1, .875, .75, .66} x the short side, placed at a corner or
  the centre, resized to the network's input size.
* **Horizontal flip for optical flow**: mirroring an image reverses horizontal motion, so
  the x-component of flow must change sign. Flow is stored as 8-bit images centred on
  127.5 (TSN: [-20, 20] -> [0, 255]), where changing sign is v -> 255 - v.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "to_tchw",
    "resize",
    "center_crop",
    "five_crop",
    "ten_crop",
    "multiscale_random_crop",
    "hflip",
    "normalize",
]


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _crop(x: Tensor, top: int, left: int, h: int, w: int) -> Tensor:
    return x[..., top : top + h, left : left + w]


def _check_fits(x: Tensor, h: int, w: int) -> None:
    H, W = x.shape[-2:]
    if h > H or w > W or h < 1 or w < 1:
        raise ValueError(f"crop {h}x{w} does not fit in frames of {H}x{W}; resize the frames first")


def to_tchw(frames: Tensor) -> Tensor:
    """(T, H, W, C) as decoded -> (T, C, H, W) as networks expect (same dtype)."""
    return frames.permute(0, 3, 1, 2).contiguous()


def resize(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Bilinear (antialiased) resize of (..., C, H, W), same dtype; an int sets the short side, like torchvision."""
    H, W = x.shape[-2:]
    if isinstance(size, int):
        h, w = (size, round(W * size / H)) if H <= W else (round(H * size / W), size)
    else:
        h, w = _pair(size)
    if (h, w) == (H, W):
        return x
    lead = x.shape[:-3]
    y = x.reshape(-1, *x.shape[-3:]).float()  # (N, C, H, W)
    y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    if not x.dtype.is_floating_point:  # keep the dtype: round back to integers
        y = y.round().clamp(0, 255) if x.dtype == torch.uint8 else y.round()
    y = y.to(x.dtype)
    return y.reshape(*lead, *y.shape[-3:])


def center_crop(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    """The central h x w window of every frame; top = (H - h) // 2, left = (W - w) // 2."""
    h, w = _pair(size)
    _check_fits(x, h, w)
    H, W = x.shape[-2:]
    return _crop(x, (H - h) // 2, (W - w) // 2, h, w)


def five_crop(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    """(5, T, C, h, w): top-left, top-right, bottom-left, bottom-right, centre."""
    h, w = _pair(size)
    _check_fits(x, h, w)
    H, W = x.shape[-2:]
    crops = [
        _crop(x, 0, 0, h, w),
        _crop(x, 0, W - w, h, w),
        _crop(x, H - h, 0, h, w),
        _crop(x, H - h, W - w, h, w),
        center_crop(x, (h, w)),
    ]
    return torch.stack(crops)  # (5, T, C, h, w)


def ten_crop(x: Tensor, size: int | tuple[int, int], *, flow: bool = False) -> Tensor:
    """(10, T, C, h, w): the five crops of `five_crop`, then their horizontal mirrors (same order).

    With `flow=True` the mirrors also change the sign of the x-flow (see `hflip`).
    """
    five = five_crop(x, size)  # (5, T, C, h, w)
    return torch.cat([five, hflip(five, flow=flow)])  # (10, T, C, h, w)


def multiscale_random_crop(
    x: Tensor,
    size: int | tuple[int, int],
    *,
    scales: Sequence[float] = (1, 0.875, 0.75, 0.66),
    max_distort: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """TSN's multi-scale crop: random window size and position, resized to `size`.

    With s = min(H, W), the window is (int(s * scales[i]), int(s * scales[j])) (height, width)
    for a random pair with |i - j| <= max_distort (TSN allows aspect changes of one step), at
    one of 5 positions chosen at random: top-left, top-right, bottom-left, bottom-right,
    centre. The same window is used for every frame; the result is (T, C, *size).
    """
    H, W = x.shape[-2:]
    base = min(H, W)
    sides = [int(base * s) for s in scales]
    pairs = [(a, b) for i, a in enumerate(sides) for j, b in enumerate(sides) if abs(i - j) <= max_distort]

    def pick(n: int) -> int:
        return int(torch.randint(n, (1,), generator=generator).item())

    h, w = pairs[pick(len(pairs))]
    _check_fits(x, h, w)
    positions = [(0, 0), (0, W - w), (H - h, 0), (H - h, W - w), ((H - h) // 2, (W - w) // 2)]
    top, left = positions[pick(len(positions))]
    return resize(_crop(x, top, left, h, w), _pair(size))  # (T, C, *size)


def hflip(x: Tensor, *, flow: bool = False, flow_center: float | None = None) -> Tensor:
    """Mirror left-right (the last dimension).

    With `flow=True`, `x` holds optical flow with x- and y-components interleaved along the
    channel dimension (dim -3): channels 0, 2, 4, .. are x-flow, 1, 3, 5, .. are y-flow. This
    covers both a (T, 2, H, W) per-frame layout (channel 0 is x) and a (.., 2L, H, W) stack
    from `flow.flow_stack`. The x-channels are reflected about `flow_center`: v -> 2c - v.
    The default centre is 127.5 for uint8 (8-bit flow, bound 20: v -> 255 - v) and 0 for
    float (signed flow, or 8-bit flow already normalized with mean 0.5 of its [0, 1] scale).
    """
    y = x.flip(-1)
    if not flow:
        return y
    if x.dim() < 3:
        raise ValueError(f"flow needs a channel dimension (..., C, H, W), got shape {tuple(x.shape)}")
    y = y.clone()
    xs = y[..., 0::2, :, :]  # (..., C/2, H, W) x-components
    if y.dtype == torch.uint8:
        c = 127.5 if flow_center is None else flow_center
        y[..., 0::2, :, :] = (2 * c - xs.float()).round().clamp(0, 255).to(torch.uint8)
    else:
        c = 0.0 if flow_center is None else flow_center
        y[..., 0::2, :, :] = 2 * c - xs
    return y


def normalize(x: Tensor, *, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """(x - mean) / std per channel (dim -3); uint8 input is first scaled to [0, 1].

    Use the statistics of the backbone's weights, e.g.
    `ResNet34_Weights.IMAGENET1K_V1.transforms().mean` (ImageNet: .485/.456/.406, .229/.224/.225).
    A single value is broadcast over all channels (e.g. a 2L-channel flow stack).
    """
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    mean_t = torch.as_tensor(list(mean), dtype=x.dtype, device=x.device)
    std_t = torch.as_tensor(list(std), dtype=x.dtype, device=x.device)
    C = x.shape[-3]
    if mean_t.numel() not in (1, C) or std_t.numel() not in (1, C):
        raise ValueError(f"mean/std have {mean_t.numel()}/{std_t.numel()} values for {C} channels")
    return (x - mean_t.view(-1, 1, 1)) / std_t.view(-1, 1, 1)
