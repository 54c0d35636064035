# Copyright (c) gppf_mm contributors. All rights reserved.
"""Visual domains: backgrounds, object classes with their shape families,
palettes and placement rules, and the scenes built from them."""
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .backgrounds import BACKGROUNDS
from .painting import ObjectSpec, compose, visible_masks
from .shapes import draw_shape
from .textures import fill, finish, random_colour, texture, textured_fill

# BGR palettes
_CAR = ((40, 40, 200), (170, 90, 40), (225, 225, 225), (45, 45, 50),
        (170, 170, 175), (40, 200, 230), (60, 130, 50))
_CLOTHES = ((140, 70, 40), (50, 50, 180), (60, 140, 60), (120, 120, 120),
            (40, 140, 240), (140, 60, 120), (200, 200, 200))
_SIGN = ((30, 200, 230), (40, 40, 210), (170, 100, 30), (30, 130, 240))
_ROOF = ((50, 80, 180), (80, 80, 85), (40, 70, 110), (120, 90, 70))
_TREE = ((40, 110, 40), (50, 140, 70), (30, 90, 60), (40, 120, 170))
_POOL = ((220, 180, 60), (230, 200, 90), (200, 150, 40))
_FIELD = ((90, 200, 220), (60, 110, 160), (80, 190, 120), (120, 210, 170))
_WOOD = ((40, 90, 150), (60, 110, 170), (30, 60, 100), (215, 215, 215),
         (45, 45, 45))
_SHADE = ((180, 220, 240), (60, 60, 190), (150, 150, 40), (230, 230, 230))
_RUG = ((120, 40, 140), (40, 40, 160), (150, 100, 40), (80, 140, 200))
_ROCK = ((110, 110, 120), (90, 100, 110), (100, 120, 140), (140, 140, 140))
_BUSH = ((40, 130, 60), (60, 150, 90), (30, 100, 50), (70, 160, 120))
_FISH = ((40, 140, 240), (60, 210, 240), (200, 130, 60), (200, 200, 210))
_CRAB = ((40, 50, 200), (50, 110, 230), (60, 80, 160))
_SHELL = ((190, 210, 230), (180, 170, 230), (225, 225, 225))
_JELLY = ((220, 170, 220), (230, 200, 180), (200, 150, 240))
_GREY = ((90, 90, 95), (130, 130, 130), (60, 70, 90), (70, 100, 130))


def _cls(shape: str, palette: Sequence[Tuple[int, int, int]],
         size: Tuple[float, float], y: Tuple[float, float] = (0.1, 0.9),
         angle: float = 0.0, flip: bool = True, layer: int = 1,
         aspect: Tuple[float, float] = (1.0, 1.0),
         shadow: bool = True) -> dict:
    return dict(shape=shape, palette=palette, size=size, y=y, angle=angle,
                flip=flip, layer=layer, aspect=aspect, shadow=shadow)


# Each domain: its object classes (name -> style), unlabelled clutter,
# objects per image, and rendering style. ``y`` is the range of the
# object's bottom edge (fraction of the height) and ``angle`` the largest
# rotation (radians); ``perspective`` scales objects with their height in
# the image and draws far (higher) ones first.
DOMAINS: Dict[str, dict] = dict(
    street=dict(
        classes=dict(
            car=_cls('car', _CAR, (0.3, 0.5), (0.5, 1.0)),
            person=_cls('person', _CLOTHES, (0.25, 0.42), (0.45, 1.0),
                        aspect=(0.9, 1.0)),
            sign=_cls('sign', _SIGN, (0.25, 0.4), (0.35, 0.8), flip=False)),
        clutter=[_cls('box', _GREY, (0.1, 0.2), (0.5, 1.0)),
                 _cls('ellipse', _GREY, (0.1, 0.2), (0.5, 1.0),
                      aspect=(1.0, 0.4), shadow=False)],
        count=(2, 7), clutter_count=(0, 3), perspective=True, shared=0.25,
        texture_prob=0.15, outline=False, sun=True),
    aerial=dict(
        classes=dict(
            house=_cls('house', _ROOF, (0.2, 0.34), angle=np.pi),
            tree=_cls('tree', _TREE, (0.14, 0.26), angle=np.pi, layer=2),
            pool=_cls('pool', _POOL, (0.16, 0.3), angle=np.pi,
                      shadow=False),
            field=_cls('field', _FIELD, (0.3, 0.5), angle=np.pi, layer=0,
                       shadow=False)),
        clutter=[_cls('rock', _GREY, (0.06, 0.12), angle=np.pi),
                 _cls('box', _GREY, (0.08, 0.14), angle=np.pi)],
        count=(3, 8), clutter_count=(0, 3), perspective=False, shared=0.2,
        texture_prob=0.2, outline=False, sun=True),
    indoor=dict(
        regions=('wall', 'floor'),
        classes=dict(
            table=_cls('table', _WOOD, (0.35, 0.6), (0.5, 1.0)),
            lamp=_cls('lamp', _SHADE, (0.3, 0.55), (0.45, 1.0)),
            rug=_cls('rug', _RUG, (0.4, 0.7), (0.75, 1.0), layer=0,
                     aspect=(1.0, 0.45), shadow=False)),
        clutter=[_cls('box', ((60, 110, 150), (80, 130, 170)), (0.12, 0.22),
                      (0.6, 1.0), angle=0.2)],
        count=(2, 5), clutter_count=(0, 2), perspective=True, shared=0.2,
        texture_prob=0.35, outline=True, sun=False),
    nature=dict(
        regions=('sky', 'water', 'grass'),
        classes=dict(
            rock=_cls('rock', _ROCK, (0.16, 0.34), (0.55, 1.0),
                      angle=np.pi),
            bush=_cls('bush', _BUSH, (0.22, 0.4), (0.55, 1.0))),
        clutter=[_cls('ellipse', ((40, 60, 90), (50, 70, 80)), (0.15, 0.3),
                      (0.6, 1.0), angle=0.3, aspect=(1.0, 0.3))],
        count=(2, 6), clutter_count=(0, 2), perspective=True, shared=0.15,
        texture_prob=0.4, outline=False, sun=False),
    underwater=dict(
        classes=dict(
            fish=_cls('fish', _FISH, (0.22, 0.4), (0.2, 0.8), angle=0.35,
                      aspect=(1.0, 0.9)),
            crab=_cls('crab', _CRAB, (0.2, 0.34), (0.8, 1.0), angle=0.2),
            shell=_cls('shell', _SHELL, (0.14, 0.24), (0.8, 1.0),
                       angle=0.5),
            jellyfish=_cls('jellyfish', _JELLY, (0.2, 0.34), (0.2, 0.6),
                           angle=0.3, flip=False)),
        clutter=[_cls('star', ((40, 90, 220), (80, 60, 200)), (0.1, 0.18),
                      (0.8, 1.0), angle=np.pi),
                 _cls('rock', _GREY, (0.1, 0.2), (0.85, 1.0), angle=np.pi)],
        count=(2, 6), clutter_count=(0, 2), perspective=False, shared=0.2,
        texture_prob=0.3, outline=True, sun=False),
)


def _sample(rng: np.random.Generator, style: dict, label: int, h: int,
            w: int, perspective: bool, palette) -> ObjectSpec:
    m = min(h, w)
    bottom = rng.uniform(*style['y']) * h
    size = rng.uniform(*style['size']) * m
    if perspective:
        size *= 0.55 + 0.6 * bottom / h
    aspect = (style['aspect'][0] * rng.uniform(0.85, 1.15),
              style['aspect'][1] * rng.uniform(0.85, 1.15))
    half = 0.5 * size * max(aspect)
    cx = rng.uniform(min(half * 0.6, w / 2), max(w - half * 0.6, w / 2))
    cy = bottom - 0.5 * size * aspect[1]
    colour = palette[int(rng.integers(len(palette)))]
    return ObjectSpec(label, style['shape'], float(cx), float(cy),
                      float(size), aspect,
                      float(rng.uniform(-1, 1) * style['angle']),
                      bool(style['flip'] and rng.random() < 0.5),
                      tuple(float(c) for c in colour))


def sample_objects(rng: np.random.Generator, domain: str, h: int,
                   w: int) -> Tuple[List[ObjectSpec], List[dict]]:
    """Objects of a scene, in drawing order, with their class styles."""
    d = DOMAINS[domain]
    styles = list(d['classes'].values())
    shared = [c for s in styles for c in s['palette']]
    items = []
    for _ in range(int(rng.integers(d['count'][0], d['count'][1] + 1))):
        label = int(rng.integers(len(styles)))
        style = styles[label]
        palette = shared if rng.random() < d['shared'] else style['palette']
        items.append((style, _sample(rng, style, label, h, w,
                                     d['perspective'], palette)))
    for _ in range(int(rng.integers(d['clutter_count'][0],
                                    d['clutter_count'][1] + 1))):
        style = d['clutter'][int(rng.integers(len(d['clutter'])))]
        items.append((style, _sample(rng, style, -1, h, w, d['perspective'],
                                     style['palette'])))
    # painter's order: layer, then far (higher in the image) to near
    order = sorted(range(len(items)), key=lambda k: (
        items[k][0]['layer'], items[k][1].cy + 0.5 * items[k][1].size
        if d['perspective'] else k))
    return [items[k][1] for k in order], [items[k][0] for k in order]


def _draw(rng: np.random.Generator, domain: str, img: np.ndarray,
          objects: List[ObjectSpec],
          styles: List[dict]) -> Tuple[np.ndarray, np.ndarray]:
    d = DOMAINS[domain]
    shadows = None
    if d['sun']:
        dx, dy = int(rng.choice([-2, -1, 1, 2])), int(rng.integers(1, 3))
        strength = float(rng.uniform(0.25, 0.45))
        shadows = [(dx, dy, strength) if s['shadow'] else None
                   for s in styles]
    return compose(rng, img, objects, d['texture_prob'], shadows,
                   d['outline'])


def det_scene(rng: np.random.Generator, domain: str, h: int, w: int
              ) -> Tuple[np.ndarray, List[Tuple[int, np.ndarray, float]]]:
    """An object detection scene of a domain.

    Returns:
        tuple: ``uint8`` BGR image and, per visible labelled object, its
        class index, visible mask and visible fraction of its full area.
    """
    img = BACKGROUNDS[domain](rng, h, w)
    objects, styles = sample_objects(rng, domain, h, w)
    owner, areas = _draw(rng, domain, img, objects, styles)
    anns = [(label, mask, float(mask.sum()) / max(int(areas[i]), 1))
            for i, label, mask in visible_masks(owner, objects)]
    return finish(rng, img, noise=3.0, blur=0.5), anns


def seg_scene(rng: np.random.Generator, domain: str, h: int,
              w: int) -> Tuple[np.ndarray, np.ndarray]:
    """A semantic segmentation scene: ``uint8`` BGR image and ``uint8``
    label map (regions first, then object classes; 255 marks clutter of no
    class, to be ignored)."""
    img, label = BACKGROUNDS[domain](rng, h, w, with_regions=True)
    objects, styles = sample_objects(rng, domain, h, w)
    owner, _ = _draw(rng, domain, img, objects, styles)
    offset = len(DOMAINS[domain]['regions'])
    for i, obj in enumerate(objects):
        label[owner == i] = offset + obj.label if obj.label >= 0 else 255
    return finish(rng, img, noise=3.0, blur=0.5), label


# rotations that keep classes apart (a box turned 45 degrees is a diamond)
_CLS_ANGLE = dict(box=0.3, diamond=0.3, cross=0.3, car=0.3, person=0.3)


def _contrasting(rng: np.random.Generator, other: np.ndarray) -> np.ndarray:
    for _ in range(20):
        c = random_colour(rng)
        if np.abs(c - other).sum() > 150:
            return c
    return 255 - other


def shape_image(rng: np.random.Generator, shape: str,
                size: int) -> np.ndarray:
    """A classification image of one object of a shape family on a
    textured background."""
    bg = random_colour(rng, sat=(0.0, 0.6))
    img = textured_fill(rng, size, size, bg, rng.uniform(5, 30))
    s = rng.uniform(0.5, 0.85) * size
    obj = ObjectSpec(0, shape, size / 2 + rng.uniform(-0.12, 0.12) * size,
                     size / 2 + rng.uniform(-0.12, 0.12) * size, s,
                     (rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.15)),
                     rng.uniform(-1, 1) * _CLS_ANGLE.get(shape, np.pi),
                     bool(rng.random() < 0.5),
                     tuple(float(c) for c in _contrasting(rng, bg)))
    compose(rng, img, [obj], texture_prob=0.4,
            outline=bool(rng.random() < 0.3))
    return finish(rng, img, noise=4.0)


def texture_image(rng: np.random.Generator, kind: str,
                  size: int) -> np.ndarray:
    """A classification image filled with a texture family in two random
    colours (the held-out texture domain)."""
    c1 = random_colour(rng)
    c2 = _contrasting(rng, c1)
    t = (texture(rng, size, size, kind, period=rng.uniform(3.5, 9)) + 1) / 2
    img = fill(size, size, c1) * (1 - t[..., None]) + c2 * t[..., None]
    img += textured_fill(rng, size, size, (0, 0, 0), 0, noise=14)
    if rng.random() < 0.3:  # a distracting blob of another colour
        m = draw_shape(rng, size, size, 'ellipse',
                       *rng.uniform(0.2, 0.8, 2) * size,
                       rng.uniform(0.15, 0.35) * size) > 0
        img[m] = random_colour(rng)
    return finish(rng, img, noise=4.0)
