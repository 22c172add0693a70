"""Drawing the generated benchmark: group styles, backgrounds, shapes and the scenes of every class.

This is the private engine behind `actionbook.data.generate`. A video is a *scene*: a
background (texture + clutter + lighting, in the style of its group) and a few *tracks*,
one per object, each giving the object's kind, colour and, per frame, its position, size,
angle, opacity and how far its four quarters have flown apart. `render` turns a scene into
frames, adding camera jitter and pixel noise.

Everything is plain NumPy on small patches: an object is drawn by evaluating the signed
distance function (SDF) of its shape on the pixels of its bounding box only, and the SDF
gives anti-aliased coverage for free (`alpha = clip(0.5 - distance_in_pixels, 0, 1)`).

Every shape kind has the *same area* (that of a disc of radius `size`), and the checker
texture has the same mean colour as a plain square, so that no appearance class can be told
from how many object-coloured pixels a frame holds.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

KINDS = ("disc", "square", "triangle", "cross", "ring", "checker")
"""Every object kind the generator draws (the labels of `static_images`)."""

TEXTURES = ("blobs", "stripes", "tiles", "rings")
"""Background texture families; each group uses one, with its own palette and scale."""

# Shape constants (units of `size`): each kind covers an area of pi * size**2.
_A_SQ = math.sqrt(math.pi) / 2  # half side of the square: (2a)^2 = pi
_H_TRI = math.sqrt(math.pi / (3 * math.sqrt(3)))  # inradius of the triangle: 3*sqrt(3)*h^2 = pi
_L_CROSS = math.sqrt(9 * math.pi / 20)  # half length of a cross arm (arm half width L/3): 20 L^2 / 9 = pi
_T_CROSS = _L_CROSS / 3
_R_RING, _W_RING = 1.0, 0.25  # ring: radii 0.75 .. 1.25, area pi (1.25^2 - 0.75^2) = pi


# ----------------------------------------------------------------------------- styles


@dataclass(frozen=True)
class Style:
    """The look of one group (UCF-101's groups are clips of one actor in one place).

    Colours are RGB in 0..255. `obj_colors` are the two object colours of the group (a
    tint and its complement); a scene's first object takes one at random, a second object
    the other, so colour never names a class.
    """

    texture: str  # one of TEXTURES
    palette: tuple[tuple[float, float, float], tuple[float, float, float]]  # background colours
    scale: float  # texture period / blob size, in units of the frame's shorter side
    angle: float  # texture orientation, radians
    clutter: int  # at most this many static clutter blobs per video
    gain: float  # overall lighting
    gradient: tuple[float, float]  # lighting slope (x, y) per shorter side
    obj_colors: tuple[tuple[float, float, float], tuple[float, float, float]]
    noise: float  # pixel noise standard deviation, 0..255 scale
    jitter: float  # camera jitter amplitude, in units of the shorter side


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return (255 * r, 255 * g, 255 * b)


def make_style(rng: np.random.Generator) -> Style:
    """A random group style: texture family, palette, lighting, object tint, noise, jitter."""
    light = rng.uniform(0.25, 0.75)  # background brightness
    contrast = rng.uniform(0.10, 0.28)
    h_bg, s_bg = rng.uniform(0, 1), rng.uniform(0.08, 0.5)
    palette = (
        _hsv(h_bg, s_bg, light - contrast / 2),
        _hsv(h_bg + rng.uniform(-0.12, 0.12), s_bg, light + contrast / 2),
    )
    # Objects stand out by brightness: dark on light backgrounds, light on dark ones.
    v_obj = light - rng.uniform(0.32, 0.45) if light > 0.5 else light + rng.uniform(0.32, 0.45)
    v_obj = float(np.clip(v_obj, 0.08, 0.9))
    h_obj, s_obj = rng.uniform(0, 1), rng.uniform(0.45, 0.9)
    obj_colors = (_hsv(h_obj, s_obj, v_obj), _hsv(h_obj + 0.5, s_obj, v_obj))
    g = rng.uniform(0, 0.25)
    phi = rng.uniform(0, 2 * math.pi)
    return Style(
        texture=TEXTURES[int(rng.integers(len(TEXTURES)))],
        palette=palette,
        scale=float(rng.uniform(0.12, 0.4)),
        angle=float(rng.uniform(0, math.pi)),
        clutter=int(rng.integers(0, 7)),
        gain=float(rng.uniform(0.8, 1.1)),
        gradient=(g * math.cos(phi), g * math.sin(phi)),
        obj_colors=obj_colors,
        noise=float(rng.uniform(2.0, 8.0)),
        jitter=float(rng.uniform(0.0, 0.03)),
    )


# ----------------------------------------------------------------------------- backgrounds


def _smooth_noise(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    """Gaussian-blurred white noise (blur `sigma` pixels) scaled to about 0..1; (h, w)."""
    z = rng.standard_normal((h, w))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    k = np.exp(-2 * (math.pi * sigma) ** 2 * (fx**2 + fy**2))
    n = np.fft.irfft2(np.fft.rfft2(z) * k, s=(h, w))
    n = (n - n.mean()) / (n.std() + 1e-8)
    return np.clip(0.5 + 0.22 * n, 0, 1)


def background(style: Style, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A background of the group's texture with this video's own phase and clutter; (h, w, 3) float32."""
    m = min(h, w)
    period = style.scale * m
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    c, s = math.cos(style.angle), math.sin(style.angle)
    u, v = (c * xx + s * yy) / period, (-s * xx + c * yy) / period
    phase = rng.uniform(0, 2 * math.pi, size=2)
    if style.texture == "stripes":
        pattern = 0.5 + 0.5 * np.sin(2 * math.pi * u + phase[0])
    elif style.texture == "tiles":
        pattern = 0.5 + 0.5 * np.sin(2 * math.pi * u + phase[0]) * np.sin(2 * math.pi * v + phase[1])
    elif style.texture == "rings":
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        pattern = 0.5 + 0.5 * np.sin(2 * math.pi * np.hypot(xx - cx, yy - cy) / period + phase[0])
    else:  # blobs
        pattern = _smooth_noise(rng, h, w, period / 3)
    n = 0.7 * pattern + 0.3 * _smooth_noise(rng, h, w, max(1.0, period / 6))  # (h, w)
    c1, c2 = np.array(style.palette, dtype=np.float64)
    img = c1 + (c2 - c1) * n[..., None]  # (h, w, 3)
    # Static clutter: soft ellipses in palette colours, brighter or darker.
    for _ in range(int(rng.integers(0, style.clutter + 1))):
        ex, ey = rng.uniform(0, w), rng.uniform(0, h)
        a, b = rng.uniform(0.03, 0.12) * m, rng.uniform(0.01, 0.04) * m
        th = rng.uniform(0, math.pi)
        du, dv = xx - ex, yy - ey
        eu = (math.cos(th) * du + math.sin(th) * dv) / a
        ev = (-math.sin(th) * du + math.cos(th) * dv) / b
        alpha = np.clip(0.5 - (np.sqrt(eu**2 + ev**2) - 1) * b, 0, 1) * rng.uniform(0.5, 0.9)
        col = np.array(style.palette[int(rng.integers(2))]) * rng.choice([0.7, 1.3])
        img += (np.clip(col, 0, 255) - img) * alpha[..., None]
    return img.astype(np.float32)


def lighting(style: Style, h: int, w: int) -> np.ndarray:
    """The group's lighting as a per-pixel gain in camera coordinates; (h, w, 1) float32."""
    m = min(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx, gy = style.gradient
    light = style.gain * (1 + gx * (xx - w / 2) / m + gy * (yy - h / 2) / m)
    return light[..., None].astype(np.float32)


# ----------------------------------------------------------------------------- shapes


def _sdf(kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) to the shape's outline, in units of size."""
    if kind == "disc":
        return np.hypot(u, v) - 1
    if kind in ("square", "checker"):
        return np.maximum(np.abs(u), np.abs(v)) - _A_SQ
    if kind == "triangle":  # equilateral, centroid at the origin, edge normals at -90, 30, 150 deg
        d = np.maximum(-v, 0.8660254 * u + 0.5 * v)
        return np.maximum(d, -0.8660254 * u + 0.5 * v) - _H_TRI
    if kind == "cross":
        au, av = np.abs(u), np.abs(v)
        bar1 = np.maximum(au - _L_CROSS, av - _T_CROSS)
        bar2 = np.maximum(au - _T_CROSS, av - _L_CROSS)
        return np.minimum(bar1, bar2)
    if kind == "ring":
        return np.abs(np.hypot(u, v) - _R_RING) - _W_RING
    raise ValueError(f"unknown object kind {kind!r}; kinds are {KINDS}")


def _coverage(kind: str, u: np.ndarray, v: np.ndarray, size: float, spread: float) -> np.ndarray:
    """Anti-aliased coverage 0..1 of a shape, or of its four quarters pushed `spread` apart."""
    if spread <= 0:
        return np.clip(0.5 - _sdf(kind, u, v) * size, 0, 1)
    total = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=np.float32)
    for sx in (-1.0, 1.0):
        for sy in (-1.0, 1.0):
            uq, vq = u - sx * spread, v - sy * spread  # coordinates of this quarter's piece
            inside = np.clip(0.5 + sx * uq * size, 0, 1) * np.clip(0.5 + sy * vq * size, 0, 1)
            total += np.clip(0.5 - _sdf(kind, uq, vq) * size, 0, 1) * inside
    return np.minimum(total, 1)


@dataclass
class Track:
    """One object of a scene. Per-frame arrays have the track's own length; the track is
    shown from video frame `start` on (multi-label videos place actions in time this way)."""

    kind: str
    color: tuple[float, float, float]
    x: np.ndarray  # (L,) centre, pixels
    y: np.ndarray  # (L,)
    size: np.ndarray  # (L,) radius of the equal-area disc, pixels
    angle: np.ndarray  # (L,) radians
    alpha: np.ndarray | None = None  # (L,) opacity; None = opaque
    spread: np.ndarray | None = None  # (L,) quarter offset in units of size; None = whole
    start: int = 0

    def __len__(self) -> int:
        return len(self.x)


def footprint(tr: Track, i: int, h: int, w: int, dx: float = 0.0, dy: float = 0.0):
    """Where frame `i` of track `tr` covers an (h, w) frame shifted by (-dx, -dy): the window
    (y0, y1, x0, x1), the object coordinates u, v (ph, pw) in units of size, and the opacity-weighted
    anti-aliased coverage (ph, pw) in 0..1; None where nothing shows."""
    size = float(tr.size[i])
    opacity = 1.0 if tr.alpha is None else float(tr.alpha[i])
    if size < 0.5 or opacity <= 0:
        return None
    spread = 0.0 if tr.spread is None else float(tr.spread[i])
    cx, cy = float(tr.x[i]) - dx, float(tr.y[i]) - dy
    r = size * (1.8 + 1.5 * spread) + 1
    x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 2, w)
    y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 2, h)
    if x0 >= x1 or y0 >= y1:
        return None
    px = np.arange(x0, x1, dtype=np.float32)[None, :] - cx  # (1, pw)
    py = np.arange(y0, y1, dtype=np.float32)[:, None] - cy  # (ph, 1)
    c, s = math.cos(tr.angle[i]), math.sin(tr.angle[i])
    u = (c * px + s * py) / size  # (ph, pw) object coordinates, units of size
    v = (-s * px + c * py) / size
    alpha = _coverage(tr.kind, u, v, size, spread) * opacity  # (ph, pw)
    return (y0, y1, x0, x1), u, v, alpha


def draw(frame: np.ndarray, tr: Track, i: int, dx: float = 0.0, dy: float = 0.0) -> None:
    """Draw frame `i` of track `tr` into `frame` (H, W, 3) float32, in place, shifted by (-dx, -dy)."""
    fp = footprint(tr, i, frame.shape[0], frame.shape[1], dx, dy)
    if fp is None:
        return
    (y0, y1, x0, x1), u, v, alpha = fp
    color = np.asarray(tr.color, dtype=np.float32)  # (3,)
    if tr.kind == "checker":
        # 4 x 4 cells; each colour channel swings by the same amount up and down, so the
        # texture's mean colour equals the plain square's.
        cell = _A_SQ / 2
        sign = np.sign(np.sin(math.pi * u / cell) * np.sin(math.pi * v / cell))  # (ph, pw)
        swing = 0.45 * np.minimum(color, 255 - color)  # (3,)
        obj = color + sign[..., None] * swing  # (ph, pw, 3)
    else:
        obj = color
    patch = frame[y0:y1, x0:x1]
    patch += (obj - patch) * alpha[..., None]


def jitter_path(rng: np.random.Generator, n: int, amplitude: int) -> np.ndarray:
    """Integer camera offsets (n, 2) = (dx, dy): a smooth AR(1) walk within +-amplitude."""
    if amplitude <= 0:
        return np.zeros((n, 2), dtype=np.int64)
    eps = rng.standard_normal((n, 2))
    z = np.zeros((n, 2))
    z[0] = eps[0]
    for t in range(1, n):
        z[t] = 0.85 * z[t - 1] + 0.5 * eps[t]
    return np.clip(np.rint(z * amplitude / 1.5), -amplitude, amplitude).astype(np.int64)


def render(
    tracks: list[Track],
    *,
    num_frames: int,
    height: int,
    width: int,
    style: Style,
    bg_rng: np.random.Generator,
    noise_rng: np.random.Generator,
) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 of a scene: background, objects, camera jitter, lighting, noise."""
    m = min(height, width)
    pad = max(1, round(style.jitter * m)) if style.jitter > 0 else 0
    bg = background(style, bg_rng, height + 2 * pad, width + 2 * pad)  # (H + 2p, W + 2p, 3)
    light = lighting(style, height, width)  # (H, W, 1)
    shake = jitter_path(bg_rng, num_frames, pad)  # (T, 2)
    out = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        dx, dy = int(shake[t, 0]), int(shake[t, 1])
        frame = bg[pad + dy : pad + dy + height, pad + dx : pad + dx + width].copy()  # (H, W, 3)
        for tr in tracks:
            i = t - tr.start
            if 0 <= i < len(tr):
                draw(frame, tr, i, dx, dy)
        frame *= light
        frame += _noise(noise_rng, (height, width, 3), style.noise)
        frame += 0.5  # round to nearest below
        np.clip(frame, 0, 255, out=frame)
        out[t] = frame  # float -> uint8 truncates
    return out


def _noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Zero-mean pixel noise of standard deviation `sigma`: the sum of two uniform bytes
    (a triangular distribution, close enough to Gaussian and 4x faster to draw)."""
    a = rng.integers(0, 256, size=(2, *shape), dtype=np.uint8)
    tri = a[0].astype(np.float32) + a[1] - 255.0  # std of (U + U) on 0..255 each: 255 / sqrt(6) + tiny
    return tri * np.float32(sigma / 104.4)


# ----------------------------------------------------------------------------- motion helpers


def _fold(z: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect positions into [lo, hi] (an object bouncing off the walls)."""
    if hi <= lo:
        return np.full_like(z, (lo + hi) / 2)
    span = hi - lo
    q = np.mod(z - lo, 2 * span)
    return lo + np.where(q > span, 2 * span - q, q)


def _wrap(z: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Wrap positions around [lo, hi) (leave at the top, come back at the bottom)."""
    return lo + np.mod(z - lo, hi - lo)


def _wander(rng, n: int, w: int, h: int, margin: float, speed: float, turn: float = 0.08):
    """A smooth random walk at constant speed that bounces off the walls; x, y of shape (n,)."""
    heading = rng.uniform(0, 2 * math.pi) + np.cumsum(rng.normal(0, turn, n))
    x0, y0 = rng.uniform(margin, max(margin, w - margin)), rng.uniform(margin, max(margin, h - margin))
    x = x0 + np.concatenate([[0.0], np.cumsum(speed * np.cos(heading[:-1]))])
    y = y0 + np.concatenate([[0.0], np.cumsum(speed * np.sin(heading[:-1]))])
    return _fold(x, margin, w - margin), _fold(y, margin, h - margin)


@dataclass
class Ctx:
    """What every scene function needs: frame size, the object size and speed of this video."""

    n: int  # frames
    w: int
    h: int
    size: float  # object size (radius of the equal-area disc), pixels
    speed: float  # this video's speed factor (nuisance), ~0.75 .. 1.33
    colors: tuple  # the group's two object colours, in this video's random order

    @property
    def m(self) -> int:
        return min(self.w, self.h)


def _const(n: int, value: float) -> np.ndarray:
    return np.full(n, float(value))


def _spin(rng, n: int, max_rate: float = 0.02) -> np.ndarray:
    """A random fixed orientation with a slow random turn (not a class cue)."""
    return rng.uniform(0, 2 * math.pi) + rng.uniform(-max_rate, max_rate) * np.arange(n)


def _plain_wander(rng, c: Ctx, kind: str, color) -> Track:
    s = c.size
    x, y = _wander(rng, c.n, c.w, c.h, 1.7 * s, rng.uniform(0.012, 0.025) * c.m * c.speed)
    return Track(kind, color, x, y, _const(c.n, s), _spin(rng, c.n))


# ----------------------------------------------------------------------------- the scenes
# One function per class: (rng, ctx) -> tracks. The categories and descriptions are in
# actionbook.data.generate.CLASSES.

_ROTATABLE = ("square", "triangle", "cross", "checker")  # kinds whose rotation is visible


def _appearance(kind: str):
    def scene(rng, c: Ctx) -> list[Track]:
        return [_plain_wander(rng, c, kind, c.colors[0])]

    return scene


def _traverse(rng, c: Ctx, sign: float, v: float) -> tuple[np.ndarray, np.ndarray]:
    """x, y of an object drifting vertically at `v` pixels a frame (`sign` -1: up, +1: down),
    leaving at one edge and coming back at the other, from a height drawn evenly over the whole
    wrap-around range. Whatever `v`, a frame shows the object at any height (and cut by the top or
    bottom edge) with the same odds: every motion class places its object so, so that only how it
    moves tells the class."""
    s = c.size
    t = np.arange(c.n)
    y = _wrap(rng.uniform(-1.7 * s, c.h + 1.7 * s) + sign * v * t, -1.7 * s, c.h + 1.7 * s)
    x = _fold(rng.uniform(1.7 * s, c.w - 1.7 * s) + rng.uniform(-0.15, 0.15) * v * t, 1.7 * s, c.w - 1.7 * s)
    return x, y


def _rise(sign: float):
    def scene(rng, c: Ctx) -> list[Track]:
        kind = _ROTATABLE[int(rng.integers(len(_ROTATABLE)))]
        x, y = _traverse(rng, c, sign, rng.uniform(0.025, 0.04) * c.m * c.speed)
        return [Track(kind, c.colors[0], x, y, _const(c.n, c.size), _spin(rng, c.n))]

    return scene


def _in_place(rng, c: Ctx) -> tuple[np.ndarray, np.ndarray]:
    """x, y of an object that stays about where it is (a slow drift up or down), at any height."""
    return _traverse(rng, c, rng.choice([-1.0, 1.0]), rng.uniform(0.002, 0.006) * c.m)


def _spin_scene(rng, c: Ctx) -> list[Track]:
    kind = _ROTATABLE[int(rng.integers(len(_ROTATABLE)))]
    x, y = _in_place(rng, c)
    rate = rng.choice([-1, 1]) * rng.uniform(0.12, 0.22) * c.speed  # either sense (mirror-proof)
    angle = rng.uniform(0, 2 * math.pi) + rate * np.arange(c.n)
    return [Track(kind, c.colors[0], x, y, _const(c.n, c.size), angle)]


def _shake_scene(rng, c: Ctx) -> list[Track]:
    s = c.size
    kind = _ROTATABLE[int(rng.integers(len(_ROTATABLE)))]
    x, y = _in_place(rng, c)
    amp = rng.uniform(0.06, 0.1) * c.m
    period = rng.uniform(6, 10) / c.speed
    osc = amp * np.sin(2 * math.pi * np.arange(c.n) / period + rng.uniform(0, 2 * math.pi))
    y = _wrap(y + osc, -1.7 * s, c.h + 1.7 * s)  # shakes up and down about its place
    return [Track(kind, c.colors[0], x, y, _const(c.n, s), _spin(rng, c.n))]


def _through(rng, n: int, values) -> np.ndarray:
    """(n,) a value that runs through `values` at n even times, linear between turns, each inner
    turn drawn within a tenth of the video of its even spacing (order's sizes, interaction's gaps)."""
    m = len(values) - 1
    turns = (np.arange(1, m) + rng.uniform(-0.2, 0.2, m - 1)) / m
    return np.interp(np.linspace(0, 1, n), [0, *turns, 1], values)


_SIZES = {  # the object's size at the turns of each class (0: smallest, 1: largest)
    "growshrink": (0, 1, 0),
    "shrinkgrow": (1, 0, 1),
    "growshrinktwice": (0, 1, 0, 1, 0),
    "shrinkgrowtwice": (1, 0, 1, 0, 1),
}


def _sizes(profile: str):
    """An object whose size runs through `_SIZES[profile]`, linear between turns, each turn
    within a tenth of the video of its even spacing: every class shows every size equally often
    and grows as much as it shrinks, so only the *order* of the sizes tells them apart. None is
    a single growth or shrinkage: those are classes of the ci clip pretraining (`MOTIONS`), and
    the stand-in for Kinetics keeps classes of its own."""

    def scene(rng, c: Ctx) -> list[Track]:
        s = c.size
        kind = KINDS[int(rng.integers(len(KINDS)))]
        scale = 0.3 + 1.1 * _through(rng, c.n, _SIZES[profile])
        x, y = _wander(rng, c.n, c.w, c.h, 2.0 * s, rng.uniform(0.003, 0.01) * c.m * c.speed)
        return [Track(kind, c.colors[0], x, y, s * scale, _spin(rng, c.n))]

    return scene


_GAPS = {  # the gap between the two objects at the turns of each class (0: touching, 1: widest)
    "meet": (1, 0),
    "part": (0, 1),
    "meetpart": (1, 0, 1),
    "partmeet": (0, 1, 0),
}


INTERACTION_REACH = 0.30  # the gap opens up to this fraction of the frame beyond touching


def _pair(profile: str, *, reach: float = INTERACTION_REACH):
    """Two objects of different kinds, of one size, on a line at a random angle and place. The gap
    between their centres runs through `_GAPS[profile]`, linear between turns (each within a
    tenth of the video of its even spacing), from touching (2.2 object radii) to `reach` of the
    frame more: every class shows every gap, angle and place equally often, so that a single frame
    cannot tell them apart, nor can averaging frames (the four classes are two time reversals,
    `Meet`/`Part` and `MeetPart`/`PartMeet`). Each object moves only along the line, toward or
    away from the other: which way it moves says nothing unless one knows where the other is.
    (Generator 1.4's design, a gap changing by 0.14-0.22 of the frame as the pair drifted along
    or across its line, was read by none of the ci features; `benchmarks/decisions/0016`.)"""

    def scene(rng, c: Ctx) -> list[Track]:
        s = c.size
        k1, k2 = rng.choice(len(KINDS), size=2, replace=False)
        th = rng.uniform(0, 2 * math.pi)
        u = np.array([math.cos(th), math.sin(th)])      # the line through both
        gap = 2.2 * s + reach * c.m * _through(rng, c.n, _GAPS[profile])                    # (n,)
        a, b = -u[:, None] * gap / 2, u[:, None] * gap / 2                          # (2, n) each
        pts = np.concatenate([a, b], axis=1)                                        # (2, 2n)
        margin = 1.2 * s
        centre = []
        for axis, extent in ((0, c.w), (1, c.h)):
            lo_c, hi_c = margin - pts[axis].min(), extent - margin - pts[axis].max()
            centre.append(rng.uniform(lo_c, hi_c) if lo_c < hi_c else (lo_c + hi_c) / 2)
        (x1, y1), (x2, y2) = (a + np.array(centre)[:, None]), (b + np.array(centre)[:, None])
        return [
            Track(KINDS[k1], c.colors[0], x1, y1, _const(c.n, s), _spin(rng, c.n)),
            Track(KINDS[k2], c.colors[1], x2, y2, _const(c.n, s), _spin(rng, c.n)),
        ]

    return scene


def _early_sight(kind: str):
    """A cue object of kind `kind` shows, still, in the first ~15% of the frames, then is gone; a
    second object, a disc or a checker (never a cue's kind), wanders through the whole video
    identically in every class. Any single frame of the cue shows which class it is: what the
    category tests is remembering it."""

    def scene(rng, c: Ctx) -> list[Track]:
        s = c.size
        main = _plain_wander(rng, c, ("disc", "checker")[int(rng.integers(2))], c.colors[0])
        e = max(2, int(round(0.15 * c.n)))
        cx, cy = rng.uniform(1.7 * s, c.w - 1.7 * s), rng.uniform(1.7 * s, c.h - 1.7 * s)
        return [main, Track(kind, c.colors[1], _const(e, cx), _const(e, cy), _const(e, 1.5 * s), _spin(rng, e))]

    return scene


def interaction_scenes(reach: float = INTERACTION_REACH) -> dict:
    """The interaction category's four scenes, the gap opening up to `reach` of the frame beyond
    touching (the benchmark: 0.30). `benchmarks/validation_probe.py --interaction-reach` renders
    other values, in memory only."""
    return {
        "Meet": _pair("meet", reach=reach),
        "Part": _pair("part", reach=reach),
        "MeetPart": _pair("meetpart", reach=reach),
        "PartMeet": _pair("partmeet", reach=reach),
    }


SCENES = {
    # appearance: what the object is; identical wandering motion
    "DiscWander": _appearance("disc"),
    "SquareWander": _appearance("square"),
    "TriangleWander": _appearance("triangle"),
    "CheckerWander": _appearance("checker"),
    # motion: one random rotatable object, at any height; how it moves
    "RiseUp": _rise(-1.0),
    "FallDown": _rise(+1.0),
    "Spin": _spin_scene,
    "Shake": _shake_scene,
    # temporal order: every size equally often in every class; only the sizes' order differs
    "GrowShrink": _sizes("growshrink"),
    "ShrinkGrow": _sizes("shrinkgrow"),
    "GrowShrinkTwice": _sizes("growshrinktwice"),
    "ShrinkGrowTwice": _sizes("shrinkgrowtwice"),
    # interaction: how the gap between two objects changes; every gap equally often
    **interaction_scenes(),
    # long range: an object seen early decides
    "EarlyCross": _early_sight("cross"),
    "EarlyRing": _early_sight("ring"),
    "EarlySquare": _early_sight("square"),
    "EarlyTriangle": _early_sight("triangle"),
}


def scene(name: str, rng: np.random.Generator, ctx: Ctx) -> list[Track]:
    """The tracks of one video of class `name`."""
    return SCENES[name](rng, ctx)


def make_ctx(rng: np.random.Generator, style: Style, *, n: int, h: int, w: int) -> Ctx:
    """Per-video nuisances: object size, speed factor, which group colour comes first."""
    m = min(h, w)
    colors = style.obj_colors if rng.random() < 0.5 else style.obj_colors[::-1]
    size = rng.uniform(0.10, 0.14) * m
    speed = math.exp(rng.uniform(math.log(0.75), math.log(1.33)))
    return Ctx(n=n, w=w, h=h, size=size, speed=speed, colors=colors)
