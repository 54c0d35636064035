# Copyright (c) gppf_mm contributors. All rights reserved.
"""Object shape families made of parts.

A shape is drawn into a ``uint8`` part map: 0 is background and the other
values name the part's role, which decides its colour when it is painted
(:data:`BODY`, :data:`ACCENT`, :data:`DARK`, :data:`LIGHT`, :data:`SKIN`).
Shapes are described in a local frame where the object spans about
``[-0.5, 0.5]`` on both axes; a :class:`Pen` maps that frame to pixels with
a scale per axis, a rotation, a mirror and a translation, so every family
can be drawn at any size, aspect, orientation and position.
"""
import functools
from typing import Callable, Dict, List, Sequence, Tuple

import cv2
import numpy as np

BODY, ACCENT, DARK, LIGHT, SKIN = 1, 2, 3, 4, 5
_SHIFT = 3  # sub-pixel bits for cv2.fillPoly


@functools.lru_cache(maxsize=64)
def _arc(start: float, end: float, n: int) -> Tuple[np.ndarray, np.ndarray]:
    t = np.radians(np.linspace(start, end, n, endpoint=end - start < 360))
    return np.cos(t), np.sin(t)


class Pen:
    """Draws polygons given in an object's local frame onto a part map.

    Args:
        h: canvas height.
        w: canvas width.
        cx: object centre x (pixels).
        cy: object centre y (pixels).
        sx: pixels per local unit along x.
        sy: pixels per local unit along y.
        angle: rotation in radians (counter-clockwise on screen).
        flip: mirror the local x axis.
    """

    def __init__(self, h: int, w: int, cx: float, cy: float, sx: float,
                 sy: float, angle: float = 0.0, flip: bool = False) -> None:
        self.shape = (h, w)
        c, s = np.cos(angle), np.sin(angle)
        rot = np.array([[c, s], [-s, c]], np.float64)
        self.matrix = rot @ np.diag([-sx if flip else sx, sy])
        self.offset = np.array([cx, cy], np.float64)
        self._polys: List[Tuple[np.ndarray, int]] = []

    def poly(self, pts: Sequence[Sequence[float]], role: int) -> None:
        """Fill a polygon given by local ``(x, y)`` vertices (role 0
        erases)."""
        self._polys.append((np.asarray(pts, np.float64).reshape(-1, 2),
                            int(role)))

    def render(self) -> np.ndarray:
        """The part map: the polygons filled in the order they were
        given (later ones overwrite earlier ones)."""
        canvas = np.zeros(self.shape, np.uint8)
        if not self._polys:
            return canvas
        local = np.concatenate([p for p, _ in self._polys])
        pix = local @ self.matrix.T + self.offset
        fixed = np.round(pix * (1 << _SHIFT)).astype(np.int32)
        start = 0
        for pts, role in self._polys:
            end = start + len(pts)
            cv2.fillPoly(canvas, [fixed[start:end]], role, cv2.LINE_8,
                         _SHIFT)
            start = end
        return canvas

    def ellipse(self, c: Sequence[float], ax: float, ay: float, role: int,
                rot: float = 0.0, start: float = 0.0, end: float = 360.0,
                n: int = 28) -> None:
        """Fill an ellipse (or the chord-closed arc from ``start`` to
        ``end`` degrees) with semi-axes ``ax``, ``ay``."""
        cos, sin = _arc(start, end, n)
        x, y = ax * cos, ay * sin
        cr, sr = np.cos(rot), np.sin(rot)
        pts = np.stack([c[0] + x * cr - y * sr, c[1] + x * sr + y * cr], 1)
        self.poly(pts, role)

    def circle(self, c: Sequence[float], r: float, role: int) -> None:
        """Fill a circle of local radius ``r``."""
        self.ellipse(c, r, r, role)

    def rect(self, x0: float, y0: float, x1: float, y1: float,
             role: int) -> None:
        """Fill an axis-aligned (in the local frame) rectangle."""
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], role)

    def line(self, p0: Sequence[float], p1: Sequence[float], width: float,
             role: int) -> None:
        """Fill a straight bar of local ``width`` from ``p0`` to ``p1``."""
        p0, p1 = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
        d = p1 - p0
        n = np.array([-d[1], d[0]]) / max(np.hypot(*d), 1e-9) * width / 2
        self.poly([p0 + n, p1 + n, p1 - n, p0 - n], role)

    def regular(self, c: Sequence[float], r: float, n: int, role: int,
                rot: float = 0.0, inner: float = 0.0) -> None:
        """Fill a regular ``n``-gon, or an ``n``-pointed star when
        ``inner`` (inner radius ratio) is set."""
        k = 2 * n if inner else n
        t = rot - np.pi / 2 + 2 * np.pi * np.arange(k) / k
        rad = np.full(k, r)
        if inner:
            rad[1::2] = r * inner
        self.poly(np.stack([c[0] + rad * np.cos(t), c[1] + rad * np.sin(t)],
                           1), role)


# ------------------------------------------------------------ geometric
def _ellipse(pen: Pen, rng: np.random.Generator) -> None:
    pen.ellipse((0, 0), 0.5, 0.5 * rng.uniform(0.45, 0.9), BODY)


def _box(pen: Pen, rng: np.random.Generator) -> None:
    a = 0.5 * rng.uniform(0.5, 1.0)
    pen.rect(-0.5, -a, 0.5, a, BODY)


def _triangle(pen: Pen, rng: np.random.Generator) -> None:
    pen.poly([(0, -0.5), (0.5, 0.4), (-0.5, 0.4)], BODY)


def _star(pen: Pen, rng: np.random.Generator) -> None:
    pen.regular((0, 0), 0.5, 5, BODY, inner=rng.uniform(0.38, 0.5))


def _hexagon(pen: Pen, rng: np.random.Generator) -> None:
    pen.regular((0, 0), 0.5, 6, BODY)


def _cross(pen: Pen, rng: np.random.Generator) -> None:
    t = 0.5 * rng.uniform(0.28, 0.38)
    pen.rect(-0.5, -t, 0.5, t, BODY)
    pen.rect(-t, -0.5, t, 0.5, BODY)


def _ring(pen: Pen, rng: np.random.Generator) -> None:
    pen.circle((0, 0), 0.5, BODY)
    pen.circle((0, 0), 0.5 * rng.uniform(0.4, 0.55), 0)


def _diamond(pen: Pen, rng: np.random.Generator) -> None:
    pen.poly([(0, -0.5), (0.35, 0), (0, 0.5), (-0.35, 0)], BODY)


# ------------------------------------------------------------ street
def _car(pen: Pen, rng: np.random.Generator) -> None:
    pen.rect(-0.5, -0.08, 0.5, 0.22, BODY)
    pen.poly([(-0.32, -0.08), (-0.2, -0.32), (0.22, -0.32), (0.36, -0.08)],
             BODY)
    pen.poly([(-0.26, -0.1), (-0.17, -0.27), (0.19, -0.27), (0.29, -0.1)],
             LIGHT)
    pen.line((0.0, -0.3), (0.0, -0.09), 0.05, BODY)
    pen.rect(-0.5, 0.02, -0.42, 0.1, LIGHT)
    for x in (-0.3, 0.3):
        pen.circle((x, 0.22), 0.13, DARK)
        pen.circle((x, 0.22), 0.05, ACCENT)


def _person(pen: Pen, rng: np.random.Generator) -> None:
    stride = rng.uniform(0.02, 0.14)
    pen.line((-0.05, 0.08), (-0.05 - stride, 0.5), 0.1, DARK)
    pen.line((0.05, 0.08), (0.05 + stride, 0.5), 0.1, DARK)
    pen.rect(-0.13, -0.26, 0.13, 0.12, BODY)
    swing = rng.uniform(-0.1, 0.1)
    pen.line((-0.13, -0.22), (-0.2 + swing, 0.08), 0.07, BODY)
    pen.line((0.13, -0.22), (0.2 - swing, 0.08), 0.07, BODY)
    pen.circle((0, -0.38), 0.11, SKIN)
    pen.ellipse((0, -0.44), 0.11, 0.06, DARK, start=180, end=360)


def _sign(pen: Pen, rng: np.random.Generator) -> None:
    pen.rect(-0.04, -0.1, 0.04, 0.5, DARK)
    plate = int(rng.integers(3))
    if plate == 0:
        pen.regular((0, -0.26), 0.25, 4, LIGHT)
        pen.regular((0, -0.26), 0.19, 4, BODY)
    elif plate == 1:
        pen.circle((0, -0.26), 0.23, LIGHT)
        pen.circle((0, -0.26), 0.17, BODY)
    else:
        pen.regular((0, -0.26), 0.24, 8, LIGHT, rot=np.pi / 8)
        pen.regular((0, -0.26), 0.18, 8, BODY, rot=np.pi / 8)


# ------------------------------------------------------------ aerial
def _house(pen: Pen, rng: np.random.Generator) -> None:
    pen.rect(-0.5, -0.32, 0.5, 0.0, BODY)
    pen.rect(-0.5, 0.0, 0.5, 0.32, ACCENT)
    if rng.random() < 0.5:  # an L-shaped wing
        pen.rect(0.1, 0.0, 0.42, 0.5, ACCENT)
    pen.line((-0.5, 0.0), (0.5, 0.0), 0.05, DARK)


def _tree(pen: Pen, rng: np.random.Generator) -> None:
    for _ in range(int(rng.integers(2, 5))):
        a, r = rng.uniform(0, 2 * np.pi), rng.uniform(0.05, 0.2)
        pen.circle((r * np.cos(a), r * np.sin(a)), rng.uniform(0.2, 0.3),
                   BODY)
    pen.circle((-0.06, -0.06), 0.12, LIGHT)
    pen.circle((0.05, 0.05), 0.05, DARK)


def _pool(pen: Pen, rng: np.random.Generator) -> None:
    for r, role in ((0.12, LIGHT), (0.06, BODY)):
        inset = 0.12 - r
        x0, y0, x1, y1 = -0.5 + inset, -0.3 + inset, 0.5 - inset, 0.3 - inset
        pen.rect(x0 + r, y0, x1 - r, y1, role)
        pen.rect(x0, y0 + r, x1, y1 - r, role)
        for cx in (x0 + r, x1 - r):
            for cy in (y0 + r, y1 - r):
                pen.circle((cx, cy), r, role)
    pen.rect(-0.3, -0.05, 0.3, 0.02, ACCENT)


def _field(pen: Pen, rng: np.random.Generator) -> None:
    pen.rect(-0.5, -0.4, 0.5, 0.4, BODY)
    rows = int(rng.integers(3, 7))
    for y in np.linspace(-0.32, 0.32, rows):
        pen.line((-0.46, y), (0.46, y), 0.05, ACCENT)


# ------------------------------------------------------------ indoor
def _table(pen: Pen, rng: np.random.Generator) -> None:
    pen.rect(-0.45, -0.2, -0.36, 0.45, ACCENT)
    pen.rect(0.36, -0.2, 0.45, 0.45, ACCENT)
    pen.rect(-0.5, -0.3, 0.5, -0.16, BODY)
    pen.rect(-0.5, -0.17, 0.5, -0.13, DARK)


def _lamp(pen: Pen, rng: np.random.Generator) -> None:
    pen.line((0, -0.2), (0, 0.42), 0.05, DARK)
    pen.ellipse((0, 0.44), 0.17, 0.06, DARK)
    pen.poly([(-0.14, -0.5), (0.14, -0.5), (0.26, -0.2), (-0.26, -0.2)],
             BODY)
    pen.rect(-0.26, -0.24, 0.26, -0.2, LIGHT)


def _rug(pen: Pen, rng: np.random.Generator) -> None:
    if rng.random() < 0.5:
        pen.ellipse((0, 0), 0.5, 0.3, ACCENT)
        pen.ellipse((0, 0), 0.42, 0.23, BODY)
        pen.ellipse((0, 0), 0.2, 0.1, LIGHT)
    else:
        pen.rect(-0.5, -0.3, 0.5, 0.3, ACCENT)
        pen.rect(-0.43, -0.23, 0.43, 0.23, BODY)
        pen.regular((0, 0), 0.16, 4, LIGHT)


# ------------------------------------------------------------ nature
def _rock(pen: Pen, rng: np.random.Generator) -> None:
    k = int(rng.integers(6, 10))
    t = np.sort(rng.uniform(0, 2 * np.pi, k))
    r = rng.uniform(0.32, 0.5, k)
    pts = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    pen.poly(pts, BODY)
    pen.poly(np.concatenate([pts[:k // 2] * 0.8, [[0.0, 0.0]]]), LIGHT)


def _bush(pen: Pen, rng: np.random.Generator) -> None:
    for _ in range(int(rng.integers(4, 7))):
        x, y = rng.uniform(-0.28, 0.28), rng.uniform(-0.18, 0.25)
        pen.circle((x, y), rng.uniform(0.15, 0.24), BODY)
    for _ in range(3):
        x, y = rng.uniform(-0.25, 0.25), rng.uniform(-0.1, 0.25)
        pen.circle((x, y), 0.05, ACCENT)


# ------------------------------------------------------------ underwater
def _fish(pen: Pen, rng: np.random.Generator) -> None:
    pen.poly([(0.22, 0), (0.5, -0.22), (0.45, 0), (0.5, 0.22)], ACCENT)
    pen.poly([(-0.1, -0.12), (0.05, -0.3), (0.15, -0.1)], ACCENT)
    pen.ellipse((-0.05, 0), 0.33, 0.17, BODY)
    pen.circle((-0.24, -0.04), 0.04, DARK)


def _crab(pen: Pen, rng: np.random.Generator) -> None:
    for side in (-1, 1):
        for k in range(3):
            y = 0.02 + 0.1 * k
            pen.line((0.15 * side, y), (0.45 * side, y + 0.2), 0.05, DARK)
        pen.line((0.2 * side, -0.05), (0.36 * side, -0.25), 0.06, ACCENT)
        pen.circle((0.38 * side, -0.3), 0.1, ACCENT)
        pen.circle((0.08 * side, -0.16), 0.035, DARK)
    pen.ellipse((0, 0.05), 0.3, 0.17, BODY)


def _shell(pen: Pen, rng: np.random.Generator) -> None:
    pen.ellipse((0, 0.3), 0.5, 0.65, BODY, start=200, end=340)
    pen.poly([(0.0, 0.3), (-0.18, -0.32), (0.18, -0.32)], BODY)
    for a in np.radians(np.linspace(210, 330, 5)):
        pen.line((0, 0.3), (0.45 * np.cos(a), 0.3 + 0.58 * np.sin(a)), 0.04,
                 LIGHT)
    pen.rect(-0.1, 0.22, 0.1, 0.38, ACCENT)


def _jellyfish(pen: Pen, rng: np.random.Generator) -> None:
    for x in np.linspace(-0.22, 0.22, 4):
        pen.line((x, -0.05), (x + rng.uniform(-0.1, 0.1), 0.5), 0.04, LIGHT)
    pen.ellipse((0, -0.05), 0.32, 0.42, BODY, start=180, end=360)
    pen.rect(-0.32, -0.08, 0.32, 0.0, ACCENT)


SHAPES: Dict[str, Callable[[Pen, np.random.Generator], None]] = dict(
    ellipse=_ellipse, box=_box, triangle=_triangle, star=_star,
    hexagon=_hexagon, cross=_cross, ring=_ring, diamond=_diamond, car=_car,
    person=_person, sign=_sign, house=_house, tree=_tree, pool=_pool,
    field=_field, table=_table, lamp=_lamp, rug=_rug, rock=_rock, bush=_bush,
    fish=_fish, crab=_crab, shell=_shell, jellyfish=_jellyfish)


def draw_shape(rng: np.random.Generator, h: int, w: int, shape: str,
               cx: float, cy: float, size: float,
               aspect: Tuple[float, float] = (1.0, 1.0), angle: float = 0.0,
               flip: bool = False) -> np.ndarray:
    """Draw one object of a shape family into a new part map.

    Args:
        rng: random generator (shape-specific variation).
        h: canvas height.
        w: canvas width.
        shape: a key of :data:`SHAPES`.
        cx: centre x in pixels.
        cy: centre y in pixels.
        size: extent in pixels of the local unit square.
        aspect: extra scale of the local x and y axes.
        angle: rotation in radians.
        flip: mirror left-right.

    Returns:
        ``uint8`` part map of shape ``(h, w)`` (0 where the object is not).
    """
    if shape not in SHAPES:
        raise ValueError(f'unknown shape {shape!r}; use one of '
                         f'{sorted(SHAPES)}')
    pen = Pen(h, w, cx, cy, size * aspect[0], size * aspect[1], angle, flip)
    SHAPES[shape](pen, rng)
    return pen.render()
