# Copyright (c) gppf_mm contributors. All rights reserved.
"""Textured backgrounds of the visual domains.

Each function returns a float BGR image of shape ``(h, w, 3)``; the domains
used for semantic segmentation return ``(image, label map)`` with a
``uint8`` region label per pixel instead.
"""
from typing import Callable, Dict, Tuple

import cv2
import numpy as np

from .textures import (
    fill,
    fractal_noise,
    gauss,
    jitter,
    linear_ramp,
    mix,
    random_colour,
    smooth_noise,
    texture,
    textured_fill,
)


def _grey(v: float, tint: float = 0.0) -> Tuple[float, float, float]:
    return (v + tint, v, v - tint)


def _wavy(rng: np.random.Generator, w: int, base: float,
          amp: float) -> np.ndarray:
    """A wavy boundary: one row per column."""
    x = np.arange(w, dtype=np.float32)
    period = rng.uniform(0.6, 2.0) * w
    wave = amp * np.sin(2 * np.pi * x / period + rng.uniform(0, 2 * np.pi))
    return base + wave + rng.uniform(-1, 1) * amp * 0.5 * (x / w - 0.5)


def street(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Asphalt with lane markings, a tiled pavement and sometimes a
    pedestrian crossing."""
    asphalt = _grey(rng.uniform(70, 110), rng.uniform(-4, 4))
    img = textured_fill(rng, h, w, asphalt, 0, noise=12)
    img += gauss(rng, (h, w, 1), 5)
    top = int(rng.uniform(0.15, 0.38) * h)
    pave = textured_fill(rng, top, w, _grey(rng.uniform(140, 175),
                                            rng.uniform(-10, 10)),
                         rng.uniform(6, 14), None, 8)
    if rng.random() < 0.5:  # paving slabs
        pave += texture(rng, top, w, 'grid', rng.uniform(5, 9),
                        0.0)[..., None] * 10
    img[:top] = pave
    img[max(top - 1, 0):top + 1] = jitter(rng, _grey(200), 8)
    lane_y = int(rng.uniform(top + 0.3 * (h - top), 0.92 * h))
    colour = jitter(rng, (230, 230, 230) if rng.random() < 0.6 else
                    (40, 200, 230), 8)
    period = int(rng.integers(10, 17))
    dash = (np.arange(w) + int(rng.integers(period))) % period < period // 2
    img[lane_y:lane_y + int(rng.integers(1, 3)), dash] = colour
    if rng.random() < 0.3:
        x0 = int(rng.uniform(0, 0.7) * w)
        band = img[top + 2:, x0:x0 + int(0.25 * w)]
        stripes = texture(rng, band.shape[0], band.shape[1], 'stripes', 5.0,
                          0.0)[..., None] > 0
        band[:] = np.where(stripes, jitter(rng, _grey(215), 6), band)
    return img


def aerial(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Grass with patches of bare soil and a dirt road, seen from above."""
    img = textured_fill(rng, h, w, jitter(rng, (60, 115, 70), 10), 0,
                        noise=18)
    soil = jitter(rng, (80, 115, 145), 12)
    patch = (fractal_noise(rng, h, w, 2, 2) > rng.uniform(0.1, 0.4))
    img[patch] = mix(img[patch], soil, 0.7)
    if rng.random() < 0.7:
        road = np.zeros((h, w), np.uint8)
        p0 = rng.uniform(0, 1, 2) * (w, h)
        a = rng.uniform(0, np.pi)
        d = np.array([np.cos(a), np.sin(a)]) * 2 * max(h, w)
        cv2.line(road, tuple(int(v) for v in p0 - d),
                 tuple(int(v) for v in p0 + d), 1, int(rng.integers(4, 9)))
        img[road > 0] = mix(img[road > 0], jitter(rng, (120, 160, 180), 8),
                            0.8)
    return img + gauss(rng, (h, w, 1), 4)


def underwater(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Blue water darkening with depth, caustics, a sandy floor and
    bubbles."""
    top, bottom = jitter(rng, (200, 170, 80), 12), jitter(rng, (110, 60, 20),
                                                          10)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = fill(h, w, top) * (1 - t) + fill(h, w, bottom) * t
    caustic = texture(rng, h, w, 'waves', rng.uniform(5, 9))
    img += (np.maximum(caustic, 0) * (1 - t[..., 0]) * 25)[..., None]
    floor = _wavy(rng, w, rng.uniform(0.72, 0.88) * h, 2.5)
    sand = np.arange(h)[:, None] >= floor[None, :]
    sand_img = textured_fill(rng, h, w, jitter(rng, (140, 180, 200), 10),
                             rng.uniform(5, 12), 'blotches', 10)
    img[sand] = sand_img[sand]
    for _ in range(int(rng.integers(0, 6))):
        c = (int(rng.integers(w)), int(rng.integers(int(h * 0.7))))
        cv2.circle(img, c, int(rng.integers(1, 3)), (235, 225, 210), 1)
    return img + gauss(rng, (h, w, 1), 4)


def indoor(rng: np.random.Generator, h: int, w: int
           ) -> Tuple[np.ndarray, np.ndarray]:
    """A wall (label 0) above a wooden or tiled floor (label 1)."""
    x = np.arange(w, dtype=np.float32)
    edge = rng.uniform(0.35, 0.6) * h + rng.uniform(-0.15, 0.15) * (x - w / 2)
    floor = np.arange(h, dtype=np.float32)[:, None] >= edge[None, :]
    wall_kind = ('stripes', 'dots', 'grid', 'blotches')[int(rng.integers(4))]
    wall = textured_fill(rng, h, w, random_colour(rng, (0.0, 0.4),
                                                  (0.6, 0.95)),
                         rng.uniform(0, 12), wall_kind, 6)
    if rng.random() < 0.6:  # planks
        ground = textured_fill(rng, h, w, jitter(rng, (60, 110, 160), 15),
                               rng.uniform(8, 16), 'stripes', 8)
        ground += texture(rng, h, w, 'stripes', rng.uniform(3, 6),
                          np.pi / 2)[..., None] * 8
    else:  # tiles
        ground = textured_fill(rng, h, w, random_colour(rng, (0.0, 0.3)),
                               rng.uniform(10, 25), 'checker', 6)
    img = np.where(floor[..., None], ground, wall)
    skirting = (~floor) & (np.arange(h)[:, None] >= edge[None, :] - 2)
    img[skirting] *= 0.6
    if rng.random() < 0.4:  # a window or picture on the wall
        fw, fh = rng.uniform(0.15, 0.3) * w, rng.uniform(0.12, 0.22) * h
        x0 = rng.uniform(0, w - fw)
        y0 = rng.uniform(0.05, 0.6) * max(float(edge.min()) - fh, 1)
        p0, p1 = (int(x0), int(y0)), (int(x0 + fw), int(y0 + fh))
        cv2.rectangle(img, p0, p1, tuple(float(v) for v in jitter(
            rng, (60, 60, 60), 10)), -1)
        cv2.rectangle(img, (p0[0] + 1, p0[1] + 1), (p1[0] - 1, p1[1] - 1),
                      tuple(float(v) for v in random_colour(rng)), -1)
    return img, floor.astype(np.uint8)


def nature(rng: np.random.Generator, h: int, w: int
           ) -> Tuple[np.ndarray, np.ndarray]:
    """Sky (label 0) over bands of water (1) and grass (2) in random
    order, with wavy shores."""
    rows = np.arange(h, dtype=np.float32)[:, None]
    y1 = _wavy(rng, w, rng.uniform(0.28, 0.45) * h, rng.uniform(1, 4))
    y2 = y1 + _wavy(rng, w, rng.uniform(0.15, 0.3) * h, rng.uniform(1, 4))
    label = np.zeros((h, w), np.uint8)
    first, second = (1, 2) if rng.random() < 0.5 else (2, 1)
    label[rows >= y1[None, :]] = first
    label[rows >= y2[None, :]] = second
    t = (linear_ramp(h, w, np.pi / 2) + 1)[..., None] / 2
    sky = fill(h, w, jitter(rng, (220, 160, 100), 12)) * (1 - t) + fill(
        h, w, jitter(rng, (245, 225, 205), 8)) * t
    cloud = smooth_noise(rng, h, w, 4) > rng.uniform(0.55, 0.75)
    sky[cloud] = mix(sky[cloud], (250, 250, 250), 0.7)
    water = textured_fill(rng, h, w, jitter(rng, (150, 115, 45), 15),
                          rng.uniform(8, 18), 'waves', 6)
    grass = textured_fill(rng, h, w, jitter(rng, (60, 150, 85), 15), 0,
                          noise=22)
    grass += texture(rng, h, w, 'stripes', rng.uniform(2, 3.5),
                     rng.uniform(-0.3, 0.3))[..., None] * 6
    img = np.where((label == 0)[..., None], sky,
                   np.where((label == 1)[..., None], water, grass))
    return img.astype(np.float32), label


def _with_regions(fn: Callable) -> Callable:
    """Adapt a region-labelled background to the common signature."""

    def wrapper(rng: np.random.Generator, h: int, w: int,
                with_regions: bool = False):
        img, label = fn(rng, h, w)
        return (img, label) if with_regions else img

    return wrapper


def _plain(fn: Callable) -> Callable:

    def wrapper(rng: np.random.Generator, h: int, w: int,
                with_regions: bool = False):
        if with_regions:
            raise ValueError(f'{fn.__name__} has no region labels')
        return fn(rng, h, w)

    return wrapper


BACKGROUNDS: Dict[str, Callable] = dict(
    street=_plain(street), aerial=_plain(aerial),
    underwater=_plain(underwater), indoor=_with_regions(indoor),
    nature=_with_regions(nature))
