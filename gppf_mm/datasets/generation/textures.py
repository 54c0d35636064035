# Copyright (c) gppf_mm contributors. All rights reserved.
"""Noise, periodic textures and colour helpers, drawn with numpy and cv2.

Every function takes a ``numpy.random.Generator``: the output is a pure
function of the generator's state. Images are BGR ``float32`` while they are
composed and ``uint8`` once finished.
"""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

Colour = Tuple[float, float, float]

TEXTURES = ('stripes', 'checker', 'dots', 'waves', 'grid', 'blotches')


def smooth_noise(rng: np.random.Generator, h: int, w: int,
                 cells: int) -> np.ndarray:
    """Low-frequency value noise in ``[0, 1]`` of shape ``(h, w)``."""
    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def fractal_noise(rng: np.random.Generator, h: int, w: int,
                  octaves: int = 3, base: int = 3) -> np.ndarray:
    """Sum of value-noise octaves, rescaled to ``[-1, 1]``."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for k in range(octaves):
        out += amp * smooth_noise(rng, h, w, base * 2**k)
        total += amp
        amp *= 0.5
    return out / total * 2 - 1


def gauss(rng: np.random.Generator, shape: Tuple[int, ...],
          sigma: float) -> np.ndarray:
    """``float32`` Gaussian noise of standard deviation ``sigma``."""
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)


def _coords(h: int, w: int, angle: float,
            period: float) -> Tuple[np.ndarray, np.ndarray]:
    """Rotated pixel coordinates measured in periods."""
    c, s = np.cos(angle) / period, np.sin(angle) / period
    xx = np.arange(w, dtype=np.float32)[None, :]
    yy = np.arange(h, dtype=np.float32)[:, None]
    return xx * np.float32(c) + yy * np.float32(s), yy * np.float32(
        c) - xx * np.float32(s)


def texture(rng: np.random.Generator, h: int, w: int, kind: str,
            period: Optional[float] = None,
            angle: Optional[float] = None) -> np.ndarray:
    """A texture of a family in :data:`TEXTURES`, values in ``[-1, 1]``.

    Args:
        rng: random generator.
        h: height in pixels.
        w: width in pixels.
        kind: texture family.
        period: spatial period in pixels (random when ``None``).
        angle: orientation in radians (random when ``None``).

    Returns:
        ``float32`` array of shape ``(h, w)``.
    """
    period = float(rng.uniform(4, 10)) if period is None else period
    angle = float(rng.uniform(0, np.pi)) if angle is None else angle
    u, v = _coords(h, w, angle, period)
    if kind == 'stripes':
        duty = rng.uniform(0.3, 0.6)
        out = np.where(np.mod(u, 1.0) < duty, 1.0, -1.0)
    elif kind == 'checker':
        out = np.where((np.floor(u) + np.floor(v)) % 2 == 0, 1.0, -1.0)
    elif kind == 'dots':
        radius = rng.uniform(0.2, 0.35)
        du, dv = np.mod(u, 1.0) - 0.5, np.mod(v, 1.0) - 0.5
        out = np.where(du * du + dv * dv < radius * radius, 1.0, -1.0)
    elif kind == 'waves':
        amp = rng.uniform(0.3, 0.8)
        out = np.sin(2 * np.pi * (u + amp * np.sin(2 * np.pi * v * 0.5)))
    elif kind == 'grid':
        width = rng.uniform(0.12, 0.25)
        line = (np.mod(u, 1.0) < width) | (np.mod(v, 1.0) < width)
        out = np.where(line, 1.0, -1.0)
    elif kind == 'blotches':
        field = fractal_noise(rng, h, w, octaves=2,
                              base=max(2, int(max(h, w) / period / 1.5)))
        out = np.where(field > rng.uniform(-0.15, 0.15), 1.0, -1.0)
    else:
        raise ValueError(f'unknown texture {kind!r}; use one of {TEXTURES}')
    return np.asarray(out, np.float32)


def jitter(rng: np.random.Generator, colour: Sequence[float],
           spread: float) -> np.ndarray:
    """A colour with Gaussian jitter of ``spread`` per channel."""
    return np.asarray(colour, np.float32) + rng.normal(0, spread, 3).astype(
        np.float32)


def mix(a: Sequence[float], b: Sequence[float], t: float) -> np.ndarray:
    """Linear blend ``(1 - t) * a + t * b`` of two colours."""
    return (np.asarray(a, np.float32) * (1 - t) +
            np.asarray(b, np.float32) * t)


def random_colour(rng: np.random.Generator, sat: Tuple[float, float] = (
        0.3, 1.0), val: Tuple[float, float] = (0.3, 1.0)) -> np.ndarray:
    """A BGR colour of random hue, saturation and value in ``[0, 255]``."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*sat) * 255,
                      rng.uniform(*val) * 255]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0].astype(
        np.float32)


def fill(h: int, w: int, colour: Sequence[float]) -> np.ndarray:
    """A ``(h, w, 3)`` float image of one colour."""
    out = np.empty((h, w, 3), np.float32)
    out[:] = np.asarray(colour, np.float32)
    return out


def textured_fill(rng: np.random.Generator, h: int, w: int,
                  colour: Sequence[float], strength: float,
                  kind: Optional[str] = None,
                  noise: float = 10.0) -> np.ndarray:
    """A colour modulated by a texture of amplitude ``strength`` (random
    family when ``kind`` is ``None``; none when ``strength`` is 0) and
    low-frequency shading of amplitude ``noise``."""
    out = fill(h, w, colour)
    if strength:
        if kind is None:
            kind = TEXTURES[int(rng.integers(len(TEXTURES)))]
        out += texture(rng, h, w, kind)[..., None] * strength
    out += fractal_noise(rng, h, w, 2)[..., None] * noise
    return out


def linear_ramp(h: int, w: int, angle: float) -> np.ndarray:
    """A linear gradient in ``[-1, 1]`` along direction ``angle``."""
    xx = np.arange(w, dtype=np.float32)[None, :]
    yy = np.arange(h, dtype=np.float32)[:, None]
    ramp = xx * np.float32(np.cos(angle)) + yy * np.float32(np.sin(angle))
    lo, hi = float(ramp.min()), float(ramp.max())
    return (ramp - lo) / max(hi - lo, 1e-6) * 2 - 1


def finish(rng: np.random.Generator, img: np.ndarray, noise: float = 3.0,
           blur: float = 0.0) -> np.ndarray:
    """Camera-like finish: optional blur, brightness/contrast jitter and
    sensor noise; returns ``uint8``."""
    if blur > 0:
        img = cv2.GaussianBlur(img, (3, 3), blur)
    gain = rng.uniform(0.9, 1.1)
    bias = rng.uniform(-10, 10)
    img = (img - 128.0) * gain + 128.0 + bias
    img = img + gauss(rng, img.shape, noise)
    return img.clip(0, 255).round().astype(np.uint8)
