# Copyright (c) gppf_mm contributors. All rights reserved.
"""Textured backgrounds and structured objects drawn with numpy and cv2.

Every function takes a ``numpy.random.Generator`` so the output is a pure
function of the seed.
"""
from typing import Dict, List, Tuple

import cv2
import numpy as np

# --------------------------------------------------------------- domains
DOMAINS: Dict[str, dict] = dict(
    street=dict(base=(92, 92, 96), spread=18, stripes=True, tint=(0, 0, 0)),
    aerial=dict(base=(60, 110, 70), spread=30, stripes=False,
                tint=(10, 20, -10)),
    indoor=dict(base=(170, 160, 150), spread=20, stripes=True,
                tint=(10, 5, 0)),
    nature=dict(base=(120, 150, 190), spread=35, stripes=False,
                tint=(-10, 10, 20)),
    shapes=dict(base=(128, 128, 128), spread=60, stripes=True,
                tint=(0, 0, 0)),
    underwater=dict(base=(150, 90, 30), spread=25, stripes=False,
                    tint=(30, 10, -20)),
)


def smooth_noise(rng: np.random.Generator, h: int, w: int,
                 cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1] of shape (h, w)."""
    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def background(rng: np.random.Generator, h: int, w: int,
               domain: str) -> np.ndarray:
    """A textured BGR background of a visual domain."""
    d = DOMAINS[domain]
    base = np.array(d['base'], np.float32) + rng.normal(0, 8, 3)
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    low = smooth_noise(rng, h, w, int(rng.integers(2, 6)))
    img += (low[..., None] - 0.5) * 2 * d['spread']
    grad = np.linspace(-1, 1, h, dtype=np.float32)[:, None, None]
    img += grad * rng.uniform(-15, 15)
    if d['stripes'] and rng.random() < 0.7:
        period = rng.uniform(5, 14)
        angle = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) / period
        img += (np.sin(2 * np.pi * phase) > 0.6)[..., None] * rng.uniform(
            8, 25)
    img += rng.normal(0, 4, (h, w, 3))
    return img.clip(0, 255).astype(np.uint8)


# --------------------------------------------------------------- objects
SHAPES = ('ellipse', 'box', 'triangle', 'star', 'hexagon', 'cross', 'ring',
          'diamond', 'car', 'person', 'house', 'tree')


def _polygon(cx: float, cy: float, r: float, n: int, rot: float,
             inner: float = 1.0) -> np.ndarray:
    pts = []
    for i in range(n * (2 if inner != 1.0 else 1)):
        rad = r if (inner == 1.0 or i % 2 == 0) else r * inner
        a = rot + np.pi * 2 * i / (n * (2 if inner != 1.0 else 1))
        pts.append((cx + rad * np.cos(a), cy + rad * np.sin(a)))
    return np.round(np.array(pts)).astype(np.int32)


def shape_mask(rng: np.random.Generator, h: int, w: int, shape: str,
               cx: float, cy: float, size: float) -> np.ndarray:
    """A binary mask (uint8 0/1) of one object of a shape family."""
    m = np.zeros((h, w), np.uint8)
    r = size / 2
    rot = rng.uniform(0, np.pi)
    c = (int(round(cx)), int(round(cy)))
    if shape == 'ellipse':
        axes = (int(r), max(2, int(r * rng.uniform(0.4, 0.9))))
        cv2.ellipse(m, c, axes, np.degrees(rot), 0, 360, 1, -1)
    elif shape == 'box':
        bw, bh = r, r * rng.uniform(0.5, 1.0)
        cv2.rectangle(m, (int(cx - bw), int(cy - bh)),
                      (int(cx + bw), int(cy + bh)), 1, -1)
    elif shape == 'triangle':
        cv2.fillPoly(m, [_polygon(cx, cy, r, 3, rot)], 1)
    elif shape == 'star':
        cv2.fillPoly(m, [_polygon(cx, cy, r, 5, rot, inner=0.45)], 1)
    elif shape == 'hexagon':
        cv2.fillPoly(m, [_polygon(cx, cy, r, 6, rot)], 1)
    elif shape == 'diamond':
        cv2.fillPoly(m, [_polygon(cx, cy, r, 4, 0.0)], 1)
    elif shape == 'cross':
        t = max(2, int(r / 3))
        cv2.rectangle(m, (int(cx - r), int(cy - t)), (int(cx + r),
                                                      int(cy + t)), 1, -1)
        cv2.rectangle(m, (int(cx - t), int(cy - r)), (int(cx + t),
                                                      int(cy + r)), 1, -1)
    elif shape == 'ring':
        cv2.circle(m, c, int(r), 1, -1)
        cv2.circle(m, c, max(1, int(r * 0.5)), 0, -1)
    elif shape == 'car':  # body + cabin + two wheels
        cv2.rectangle(m, (int(cx - r), int(cy - r * 0.25)),
                      (int(cx + r), int(cy + r * 0.3)), 1, -1)
        cv2.rectangle(m, (int(cx - r * 0.5), int(cy - r * 0.6)),
                      (int(cx + r * 0.4), int(cy - r * 0.2)), 1, -1)
        for dx in (-0.55, 0.55):
            cv2.circle(m, (int(cx + dx * r), int(cy + r * 0.35)),
                       max(2, int(r * 0.25)), 1, -1)
    elif shape == 'person':  # head + body + legs
        cv2.circle(m, (c[0], int(cy - r * 0.7)), max(2, int(r * 0.25)), 1, -1)
        cv2.rectangle(m, (int(cx - r * 0.25), int(cy - r * 0.45)),
                      (int(cx + r * 0.25), int(cy + r * 0.3)), 1, -1)
        for dx in (-0.15, 0.15):
            cv2.line(m, (int(cx + dx * r), int(cy + r * 0.3)),
                     (int(cx + dx * 2 * r), int(cy + r)), 1,
                     max(1, int(r * 0.15)))
    elif shape == 'house':  # square + roof
        cv2.rectangle(m, (int(cx - r * 0.7), int(cy - r * 0.1)),
                      (int(cx + r * 0.7), int(cy + r * 0.8)), 1, -1)
        roof = np.array([[cx - r * 0.9, cy - r * 0.1], [cx + r * 0.9,
                                                        cy - r * 0.1],
                         [cx, cy - r * 0.9]]).round().astype(np.int32)
        cv2.fillPoly(m, [roof], 1)
    elif shape == 'tree':  # crown + trunk
        cv2.circle(m, (c[0], int(cy - r * 0.25)), max(2, int(r * 0.65)), 1,
                   -1)
        cv2.rectangle(m, (int(cx - r * 0.12), int(cy + r * 0.2)),
                      (int(cx + r * 0.12), int(cy + r)), 1, -1)
    else:
        raise ValueError(f'unknown shape {shape!r}')
    return m


def paint(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray,
          colour: Tuple[float, float, float], textured: bool) -> None:
    """Paint an object (in place) with a shaded, optionally textured colour."""
    h, w = mask.shape
    col = np.array(colour, np.float32) + rng.normal(0, 12, 3)
    shade = smooth_noise(rng, h, w, 3)[..., None] * 40 - 20
    layer = np.empty((h, w, 3), np.float32)
    layer[:] = col
    layer += shade
    if textured:
        yy, xx = np.mgrid[0:h, 0:w]
        period = int(rng.integers(3, 6))
        layer += (((xx + yy) // period) % 2)[..., None] * 30.0 - 15.0
    sel = mask.astype(bool)
    img[sel] = layer[sel].clip(0, 255).astype(np.uint8)


def place_objects(rng: np.random.Generator, img: np.ndarray,
                  classes: List[Tuple[str, Tuple[int, int, int]]],
                  count: int, size_range: Tuple[float, float],
                  min_visible: int = 12) -> List[Tuple[int, np.ndarray]]:
    """Draw ``count`` objects in order (later ones occlude earlier ones).

    Args:
        classes: ``(shape, bgr colour)`` per class.

    Returns:
        list of ``(class index, visible mask)``, fully or nearly hidden
        objects dropped.
    """
    h, w = img.shape[:2]
    drawn: List[Tuple[int, np.ndarray]] = []
    for _ in range(count):
        label = int(rng.integers(len(classes)))
        shape, colour = classes[label]
        size = rng.uniform(*size_range) * min(h, w)
        cx = rng.uniform(size * 0.4, w - size * 0.4)
        cy = rng.uniform(size * 0.4, h - size * 0.4)
        mask = shape_mask(rng, h, w, shape, cx, cy, size)
        if mask.sum() < min_visible:
            continue
        paint(rng, img, mask, colour, textured=rng.random() < 0.3)
        # occlusion: earlier objects lose what this one covers
        drawn = [(lbl, m * (1 - mask)) for lbl, m in drawn]
        drawn.append((label, mask))
    return [(lbl, m) for lbl, m in drawn if int(m.sum()) >= min_visible]
