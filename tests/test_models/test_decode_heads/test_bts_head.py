# Copyright (c) gppf_mm contributors. All rights reserved.
"""The BTS head: local planar guidance against hand-computed plane depths,
the plane parametrisation, and the head's shapes, range and loss."""
import math

import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from gppf_mm.models.decode_heads import (
    BTSHead,
    LocalPlanarGuidance,
    plane_from_features,
)


def test_local_planar_guidance_equals_plane_depths():
    # one 2 x 2 patch; offsets (-0.25, 0.25) in u (columns) and v (rows)
    plane = torch.tensor([0.6, 0.0, 0.8, 4.0]).view(1, 4, 1, 1)
    depth = LocalPlanarGuidance(2)(plane)
    expected = torch.tensor([[4 / (0.6 * -0.25 + 0.8),
                              4 / (0.6 * 0.25 + 0.8)]] * 2)
    torch.testing.assert_close(depth[0, 0], expected)
    # a fronto-parallel plane has its distance as depth everywhere; each
    # low-resolution pixel covers its own ratio x ratio block
    plane = torch.tensor([[0.0, 0.0, 1.0, 3.0], [0.0, 0.0, 1.0, 7.0]])
    plane = plane.t().reshape(1, 4, 1, 2)
    depth = LocalPlanarGuidance(4)(plane)
    assert depth.shape == (1, 1, 4, 8)
    assert torch.all(depth[..., :4] == 3) and torch.all(depth[..., 4:] == 7)
    # tilted in v: rows differ, columns do not
    plane = torch.tensor([0.0, 0.5, math.sqrt(0.75), 2.0]).view(1, 4, 1, 1)
    depth = LocalPlanarGuidance(4)(plane)[0, 0]
    v = (torch.arange(4.0) - 1.5) / 4
    torch.testing.assert_close(depth[:, 0], 2 / (0.5 * v +
                                                 math.sqrt(0.75)))
    assert torch.all(depth == depth[:, :1])
    with pytest.raises(ValueError, match='ratio'):
        LocalPlanarGuidance(0)


def test_plane_parametrisation():
    raw = torch.randn(2, 3, 5, 5) * 3
    plane = plane_from_features(raw, max_depth=80.0)
    normal, dist = plane[:, :3], plane[:, 3]
    torch.testing.assert_close(normal.norm(dim=1), torch.ones(2, 5, 5))
    assert torch.all(normal[:, 2] >= 0.5 - 1e-6)  # tilt <= 60 degrees
    assert torch.all((dist > 0) & (dist < 80))
    zero = plane_from_features(torch.zeros(1, 3, 1, 1), 80.0).flatten()
    # sigmoid(0) = 0.5: theta = pi / 6, phi = pi, distance 40
    torch.testing.assert_close(zero, torch.tensor(
        [-0.5, 0.0, math.cos(math.pi / 6), 40.0]), atol=1e-6, rtol=0)


def test_head_shapes_range_and_loss():
    from mmengine.registry import DefaultScope
    torch.manual_seed(0)
    # built under another library's default scope, as in a gppf_mm runner
    with DefaultScope.overwrite_default_scope('gppf_mm'):
        head = BTSHead(in_channels=[8, 16, 32, 64], channels=32,
                       max_depth=80.0)
    feats = [torch.randn(2, c, 64 // s, 96 // s)
             for c, s in zip([8, 16, 32, 64], [4, 8, 16, 32])]
    depth = head(feats)
    assert depth.shape == (2, 1, 64, 96)
    assert torch.all((depth > 0) & (depth < 80))
    samples = []
    for _ in range(2):
        s = SegDataSample()
        s.gt_depth_map = PixelData(data=torch.rand(1, 64, 96) * 50 + 1)
        samples.append(s)
    losses = head.loss(feats, samples, None)
    assert set(losses) == {'loss_silog'}
    losses['loss_silog'].backward()
    assert all(p.grad is not None for p in head.parameters())
    # inputs whose size is not a multiple of 32
    feats = [torch.randn(1, c, math.ceil(72 / s), 96 // s)
             for c, s in zip([8, 16, 32, 64], [4, 8, 16, 32])]
    assert head(feats).shape[1] == 1
    with pytest.raises(ValueError, match='4 backbone outputs'):
        BTSHead(in_channels=[8, 16, 32], channels=32)
