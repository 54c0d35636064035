# Copyright (c) gppf_mm contributors. All rights reserved.
"""Painting part maps into images and composing scenes with occlusion."""
from typing import List, NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np

from .shapes import ACCENT, BODY, DARK, LIGHT, SKIN, draw_shape
from .textures import TEXTURES, jitter, linear_ramp, mix, smooth_noise, texture

SKIN_TONES = ((140, 180, 230), (100, 150, 210), (70, 110, 170),
              (50, 80, 120), (160, 200, 240))


class ObjectSpec(NamedTuple):
    """One object of a scene before it is drawn.

    ``label`` is the class index, or ``-1`` for clutter of no class (left
    unannotated in detection, labelled ``ignore`` in semantic maps).
    """
    label: int
    shape: str
    cx: float
    cy: float
    size: float
    aspect: Tuple[float, float]
    angle: float
    flip: bool
    colour: Tuple[float, float, float]


def paint(rng: np.random.Generator, img: np.ndarray, parts: np.ndarray,
          colour: Sequence[float], texture_prob: float = 0.3,
          light_angle: float = 0.8,
          accent: Optional[Sequence[float]] = None) -> None:
    """Paint a part map onto a float BGR image in place.

    The body gets the object's colour with directional shading, mottling
    and (with probability ``texture_prob``) a surface texture; the other
    roles are derived from it (accent: a darker or given second colour,
    dark: near black, light: a tint towards white, skin: a skin tone).
    """
    x0, y0, w, h = cv2.boundingRect(parts)
    if w == 0 or h == 0:
        return
    crop = parts[y0:y0 + h, x0:x0 + w]
    base = jitter(rng, colour, 10)
    shade = (linear_ramp(h, w, light_angle) * -14 +
             smooth_noise(rng, h, w, 2) * 16 - 8)[..., None]
    if rng.random() < texture_prob:
        kind = TEXTURES[int(rng.integers(len(TEXTURES)))]
        shade = shade + texture(rng, h, w, kind, period=rng.uniform(
            3, 6))[..., None] * rng.uniform(10, 22)
    if accent is None:
        accent = mix(base, (0, 0, 0), rng.uniform(0.3, 0.5))
    colours = {
        BODY: base,
        ACCENT: jitter(rng, accent, 6),
        DARK: jitter(rng, (38, 36, 40), 6),
        LIGHT: mix(base, (250, 250, 250), rng.uniform(0.5, 0.7)),
        SKIN: jitter(rng, SKIN_TONES[int(rng.integers(len(SKIN_TONES)))], 6),
    }
    region = img[y0:y0 + h, x0:x0 + w]
    present = np.bincount(crop.ravel(), minlength=SKIN + 1)
    for role, col in colours.items():
        if present[role]:
            sel = crop == role
            gain = 0.4 if role == DARK else 1.0
            region[sel] = col + shade[sel] * gain


def cast_shadow(img: np.ndarray, mask: np.ndarray, dx: int, dy: int,
                strength: float) -> None:
    """Darken ``img`` in place under ``mask`` shifted by ``(dx, dy)``."""
    h, w = mask.shape
    x, y, bw, bh = cv2.boundingRect(mask.astype(np.uint8))
    m = 1 + max(abs(dx), abs(dy))  # margin for the shift and the blur
    x0, y0 = max(x - m, 0), max(y - m, 0)
    x1, y1 = min(x + bw + m, w), min(y + bh + m, h)
    crop = mask[y0:y1, x0:x1].astype(np.float32)
    shifted = cv2.warpAffine(crop, np.float32([[1, 0, dx], [0, 1, dy]]),
                             (x1 - x0, y1 - y0))
    shifted = cv2.GaussianBlur(shifted, (3, 3), 0.8)
    img[y0:y1, x0:x1] *= (1 - strength * shifted)[..., None]


def compose(rng: np.random.Generator, img: np.ndarray,
            objects: List[ObjectSpec], texture_prob: float = 0.3,
            shadows: Optional[Sequence[Optional[Tuple[int, int,
                                                      float]]]] = None,
            outline: bool = False,
            accents: Optional[Sequence[Optional[Sequence[float]]]] = None
            ) -> Tuple[np.ndarray, np.ndarray]:
    """Draw objects in order (later ones occlude earlier ones).

    Args:
        rng: random generator.
        img: float BGR image, painted in place.
        objects: objects in drawing order.
        texture_prob: chance of a textured surface per object.
        shadows: per object, ``(dx, dy, strength)`` of a cast shadow or
            ``None``.
        outline: draw a dark one-pixel outline around each object.
        accents: an optional second colour per object.

    Returns:
        tuple: the ``int32`` owner map (index of the object visible at each
        pixel, ``-1`` where the background is) and each object's unoccluded
        area in pixels.
    """
    h, w = img.shape[:2]
    owner = np.full((h, w), -1, np.int32)
    areas = np.zeros(len(objects), np.int64)
    light = rng.uniform(0.3, 1.3)
    for i, obj in enumerate(objects):
        parts = draw_shape(rng, h, w, obj.shape, obj.cx, obj.cy, obj.size,
                           obj.aspect, obj.angle, obj.flip)
        mask = parts > 0
        areas[i] = int(mask.sum())
        if not areas[i]:
            continue
        if shadows is not None and shadows[i] is not None:
            cast_shadow(img, mask, *shadows[i])
        if outline:
            ring = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3),
                                                             np.uint8)) > 0
            img[ring & ~mask] *= 0.45
        paint(rng, img, parts, obj.colour, texture_prob, light,
              None if accents is None else accents[i])
        owner[mask] = i
    return owner, areas


def visible_masks(owner: np.ndarray, objects: List[ObjectSpec],
                  min_pixels: int = 10,
                  min_side: int = 2) -> List[Tuple[int, int, np.ndarray]]:
    """The visible masks of the labelled objects of a composed scene.

    Objects hidden behind later ones (fewer than ``min_pixels`` visible
    pixels, or a visible box thinner than ``min_side``) are dropped.

    Returns:
        ``(object index, label, bool mask)`` per kept object.
    """
    out = []
    for i, obj in enumerate(objects):
        if obj.label < 0:
            continue
        mask = owner == i
        n = int(mask.sum())
        if n < min_pixels:
            continue
        ys, xs = np.nonzero(mask)
        if np.ptp(xs) + 1 < min_side or np.ptp(ys) + 1 < min_side:
            continue
        out.append((i, obj.label, mask))
    return out

