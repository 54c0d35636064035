# Copyright (c) gppf_mm contributors. All rights reserved.
"""A ray-cast scene for dense depth regression.

A level pinhole camera at height ``camera_height`` looks at a textured
ground plane closed by a facade at a known distance; boxes (front and top
faces) and spheres stand on the ground. Depth is the z distance along the
optical axis in millimetres; the sky has no depth and is stored as 0.
"""
from typing import Dict, Tuple

import numpy as np

from .textures import fill, fractal_noise, gauss, jitter, mix, random_colour

FOCAL_RATIO = 0.9  # focal length in pixels per pixel of image width
MAX_DEPTH_MM = 60000


def intrinsics(h: int, w: int) -> Dict[str, float]:
    """Pinhole intrinsics of the depth scenes at a given image size."""
    f = FOCAL_RATIO * w
    return dict(fx=f, fy=f, cx=w / 2.0, cy=h / 2.0)


def depth_scene(rng: np.random.Generator, h: int,
                w: int) -> Tuple[np.ndarray, np.ndarray]:
    """Render one scene.

    Returns:
        tuple: ``uint8`` BGR image ``(h, w, 3)`` and ``uint16`` depth in
        millimetres ``(h, w)`` (0 where there is no surface).
    """
    k = intrinsics(h, w)
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    dx = (u + 0.5 - k['cx']) / k['fx']  # ray direction with dz = 1
    dy = (v + 0.5 - k['cy']) / k['fy']  # y points down
    cam_h = rng.uniform(1.2, 1.8)
    inf = np.full((h, w), np.inf)

    surfaces = []  # (depth, colour) per surface, inf where missed
    # ground plane y = cam_h
    with np.errstate(divide='ignore'):
        z_ground = np.where(dy > 1e-6, cam_h / np.maximum(dy, 1e-6), inf)
    gx, gz = dx * np.where(np.isfinite(z_ground), z_ground, 0), z_ground
    tile = rng.uniform(0.6, 1.5)
    checker = ((np.floor(gx / tile) + np.floor(np.where(
        np.isfinite(gz), gz, 0) / tile)) % 2)[..., None]
    c1 = random_colour(rng, (0.1, 0.5), (0.3, 0.6))
    c2 = mix(c1, (230, 230, 230), rng.uniform(0.2, 0.4))
    ground = fill(h, w, c1) * (1 - checker) + fill(h, w, c2) * checker
    surfaces.append((z_ground, ground))

    # facade z = z_wall from the ground up to wall_h
    z_wall = rng.uniform(12.0, 30.0)
    wall_h = rng.uniform(3.0, 9.0)
    hit = dy * z_wall >= cam_h - wall_h
    wx, wy = dx * z_wall, dy * z_wall
    windows = ((np.mod(wx, 2.5) > 1.0) & (np.mod(wy, 3.0) > 1.2))[..., None]
    facade = fill(h, w, random_colour(rng, (0.1, 0.5), (0.4, 0.8)))
    facade = np.where(windows, facade * 0.45, facade)
    surfaces.append((np.where(hit, z_wall, inf), facade))

    light = np.array([0.4, -0.7, -0.6])
    light /= np.linalg.norm(light)
    for _ in range(int(rng.integers(3, 8))):
        z0 = rng.uniform(2.5, min(14.0, z_wall - 2.0))
        half_fov = k['cx'] / k['fx'] * z0
        x0 = rng.uniform(-half_fov, half_fov)
        colour = jitter(rng, random_colour(rng, (0.4, 1.0), (0.4, 1.0)), 5)
        if rng.random() < 0.5:  # box: front face and top face
            bw, bh, bd = rng.uniform(0.5, 2.0), rng.uniform(0.4, 2.5), \
                rng.uniform(0.5, 2.0)
            x1 = x0 + bw
            fx_, fy_ = dx * z0, dy * z0
            front = (fx_ >= x0) & (fx_ <= x1) & (fy_ >= cam_h - bh) & (
                fy_ <= cam_h)
            surfaces.append((np.where(front, z0, inf),
                             fill(h, w, colour * 0.85)))
            if bh < cam_h:
                with np.errstate(divide='ignore'):
                    zt = np.where(dy < -1e-6, inf, (cam_h - bh) /
                                  np.maximum(dy, 1e-6))
                tx = dx * np.where(np.isfinite(zt), zt, 0)
                top = (zt >= z0) & (zt <= z0 + bd) & (tx >= x0) & (tx <= x1)
                surfaces.append((np.where(top, zt, inf),
                                 fill(h, w, mix(colour, (255, 255, 255),
                                                0.25))))
        else:  # sphere resting on the ground
            r = rng.uniform(0.3, 1.0)
            c = np.array([x0, cam_h - r, z0 + r])
            d = np.stack([dx, dy, np.ones_like(dx)], -1)
            dd = (d * d).sum(-1)
            dc = d @ c
            disc = dc * dc - dd * (c @ c - r * r)
            t = np.where(disc > 0, (dc - np.sqrt(np.maximum(disc, 0))) / dd,
                         inf)
            normal = (d * np.where(np.isfinite(t), t, 0)[..., None] - c) / r
            lam = np.clip(-(normal @ light), 0, 1)[..., None]
            surfaces.append((t, fill(h, w, colour) * (0.35 + 0.75 * lam)))

    zs = np.stack([s[0] for s in surfaces])
    idx = zs.argmin(0)
    z = np.take_along_axis(zs, idx[None], 0)[0]
    cols = np.stack([s[1] for s in surfaces])
    img = np.take_along_axis(cols, idx[None, ..., None], 0)[0]
    sky = ~np.isfinite(z)
    t = (v / h)[..., None]
    sky_img = fill(h, w, jitter(rng, (215, 160, 110), 10)) * (1 - t) + fill(
        h, w, (235, 215, 200)) * t
    img = np.where(sky[..., None], sky_img, img)
    # texture, then fog with distance
    img = img + fractal_noise(rng, h, w, 3, 4)[..., None] * 10
    fog = 1 - np.exp(-np.where(sky, 0, z) / rng.uniform(35, 60))
    img = img * (1 - fog[..., None]) + np.array([210, 205, 200]) * fog[
        ..., None]
    img = img + gauss(rng, img.shape, 3)
    depth_mm = np.where(sky, 0, np.round(z * 1000)).clip(0, MAX_DEPTH_MM)
    return img.clip(0, 255).round().astype(np.uint8), depth_mm.astype(
        np.uint16)
