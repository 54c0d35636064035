# Copyright (c) gppf_mm contributors. All rights reserved.
"""A BTS depth head ("From Big to Small: Multi-Scale Local Planar Guidance
for Monocular Depth Estimation", Lee et al., 2019), written from the paper
for MMSeg's ``DepthEstimator``."""
import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.models.decode_heads import VPDDepthHead
from mmseg.registry import MODELS
from torch import Tensor


class LocalPlanarGuidance(nn.Module):
    """Local planar guidance (BTS, Section 3.2): every pixel of a map at
    1/``ratio`` resolution holds a local plane ``n1 x + n2 y + n3 z = n4``
    (unit normal ``n``, distance ``n4``); each of the ``ratio x ratio``
    pixels it covers at full resolution gets the depth of that plane along
    its ray, ``n4 / (n1 u + n2 v + n3)``, with ``(u, v)`` the pixel's offset
    from the patch centre in units of the patch size.

    The forward takes the plane as ``(B, 4, h, w)`` = normal (unit length)
    and distance, and returns depth ``(B, 1, h * ratio, w * ratio)``.
    """

    def __init__(self, ratio: int) -> None:
        super().__init__()
        if not isinstance(ratio, int) or ratio < 1:
            raise ValueError(f'ratio must be an int >= 1, got {ratio!r}')
        self.ratio = ratio
        offsets = (torch.arange(ratio, dtype=torch.float32) -
                   (ratio - 1) / 2) / ratio
        self.register_buffer('offsets', offsets, persistent=False)

    def forward(self, plane: Tensor) -> Tensor:
        k = self.ratio
        b, _, h, w = plane.shape
        plane = plane.repeat_interleave(k, 2).repeat_interleave(k, 3)
        u = self.offsets.to(plane).repeat(w).view(1, 1, 1, w * k)
        v = self.offsets.to(plane).repeat(h).view(1, 1, h * k, 1)
        n1, n2, n3, n4 = plane.split(1, dim=1)
        # normals tilt at most 60 degrees from the optical axis (n3 >= 0.5)
        # and |u|, |v| < 0.5: the denominator is positive except at the
        # corners of the steepest planes, where it is kept from 0
        return n4 / (n1 * u + n2 * v + n3).clamp(min=1e-2)


def plane_from_features(raw: Tensor, max_depth: float) -> Tensor:
    """The plane of 3 raw channels: polar angle ``theta = sigmoid * pi / 3``,
    azimuth ``phi = sigmoid * 2 pi`` (the unit normal) and distance
    ``sigmoid * max_depth``."""
    theta = torch.sigmoid(raw[:, 0:1]) * math.pi / 3
    phi = torch.sigmoid(raw[:, 1:2]) * 2 * math.pi
    dist = torch.sigmoid(raw[:, 2:3]) * max_depth
    return torch.cat([
        torch.sin(theta) * torch.cos(phi),
        torch.sin(theta) * torch.sin(phi),
        torch.cos(theta), dist
    ], 1)


def _conv(cin: int, cout: int, k: int = 3, dilation: int = 1) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=dilation * (k // 2),
                  dilation=dilation, bias=False), nn.ELU())


class _UpConv(nn.Sequential):
    """x2 nearest upsampling, then a 3 x 3 convolution."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Upsample(scale_factor=2, mode='nearest'),
                         _conv(cin, cout))


@MODELS.register_module()
class BTSHead(VPDDepthHead):
    """The BTS decoder over a 4-stage backbone (outputs at strides 4, 8, 16
    and 32, e.g. ResNet ``out_indices=(0, 1, 2, 3)``).

    As in the paper: upconvolutions with skip connections from stride 32 to
    stride 8, dense atrous convolutions (dilations 3, 6, 12, 18, 24) at
    stride 8, then local planar guidance at strides 8, 4 and 2 whose
    full-resolution depths (divided by ``max_depth``) guide the next, finer
    stage (downsampled to its resolution); the last stage concatenates the
    upsampled features, a 1 x 1 depth and the three guidance depths, and
    outputs ``sigmoid * max_depth``. The paper's backbone also gives stride
    2 features; a ResNet's first output is at stride 4, so the stride-2
    stage has no skip connection here. Features are halved in width at
    every finer stage (``channels`` at stride 16).

    Loss and inference are MMSeg's depth head's (``VPDDepthHead``:
    ``loss_decode`` against ``gt_depth_map`` resized to the prediction,
    ``SiLogLoss`` by default).

    Args:
        in_channels (Sequence[int]): channels of the 4 backbone outputs.
        channels (int): width at stride 16. Defaults to 512 (the paper's).
        max_depth (float): depth range (80 m for KITTI).
        loss_decode (dict | list): MMSeg loss config(s).
        align_corners (bool): for the resize to the ground truth.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 channels: int = 512,
                 max_depth: float = 80.0,
                 loss_decode=dict(type='SiLogLoss'),
                 align_corners: bool = False,
                 init_cfg=None) -> None:
        BaseModule.__init__(self, init_cfg=init_cfg)
        if len(in_channels) != 4:
            raise ValueError(f'BTSHead takes 4 backbone outputs (strides 4 '
                             f'.. 32), got in_channels={in_channels}')
        if channels < 32:
            raise ValueError(f'BTSHead needs channels >= 32 (halved 4 '
                             f'times), got {channels}')
        self.in_channels = list(in_channels)
        self.channels = channels
        self.max_depth = float(max_depth)
        self.align_corners = align_corners
        c2, c3, c4, c5 = in_channels
        w16, w8, w4, w2, w1 = (channels // 2**i for i in range(5))
        # stride 32 -> 16 -> 8 with skips
        self.up5 = _UpConv(c5, w16)
        self.iconv5 = _conv(w16 + c4, w16)
        self.up4 = _UpConv(w16, w8)
        self.iconv4 = _conv(w8 + c3, w8)
        # dense atrous convolutions at stride 8
        self.daspp = nn.ModuleList()
        cin = w8
        for i, rate in enumerate((3, 6, 12, 18, 24)):
            self.daspp.append(_conv(cin, w8 // 2, dilation=rate))
            cin = w8 + (i + 1) * (w8 // 2)
        self.daspp_out = _conv(cin, w8)
        # local planar guidance at strides 8, 4, 2
        self.reduc8 = self._reduction(w8)
        self.lpg8 = LocalPlanarGuidance(8)
        self.up3 = _UpConv(w8, w4)
        self.iconv3 = _conv(w4 + c2 + 1, w4)
        self.reduc4 = self._reduction(w4)
        self.lpg4 = LocalPlanarGuidance(4)
        self.up2 = _UpConv(w4, w2)
        self.iconv2 = _conv(w2 + 1, w2)
        self.reduc2 = self._reduction(w2)
        self.lpg2 = LocalPlanarGuidance(2)
        # full resolution
        self.up1 = _UpConv(w2, w1)
        self.reduc1 = nn.Conv2d(w1, 1, 1)
        self.iconv1 = _conv(w1 + 4, w1)
        self.get_depth = nn.Conv2d(w1, 1, 3, padding=1)
        if isinstance(loss_decode, dict):
            self.loss_decode = _build_loss(loss_decode)
        elif isinstance(loss_decode, (list, tuple)):
            self.loss_decode = nn.ModuleList(
                _build_loss(loss) for loss in loss_decode)
        else:
            raise TypeError(f'loss_decode must be a dict or a sequence of '
                            f'dicts, got {type(loss_decode)}')

    @staticmethod
    def _reduction(cin: int) -> nn.Module:
        """1 x 1 convolutions down to the 3 raw plane channels."""
        return nn.Sequential(_conv(cin, cin // 2, k=1),
                             nn.Conv2d(cin // 2, 3, 1))

    def _guidance(self, feat: Tensor, reduc: nn.Module,
                  lpg: LocalPlanarGuidance) -> Tensor:
        """Full-resolution depth / max_depth of one guidance stage."""
        plane = plane_from_features(reduc(feat), self.max_depth)
        return lpg(plane) / self.max_depth

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        f2, f3, f4, f5 = inputs
        x = self.up5(f5)
        x = self.iconv5(torch.cat([x, _fit(f4, x)], 1))
        x = self.up4(x)
        x = self.iconv4(torch.cat([x, _fit(f3, x)], 1))
        dense = [x]
        for conv in self.daspp:
            dense.append(conv(torch.cat(dense, 1)))
        x = self.daspp_out(torch.cat(dense, 1))
        d8 = self._guidance(x, self.reduc8, self.lpg8)

        x = self.up3(x)
        x = self.iconv3(torch.cat(
            [x, _fit(f2, x), F.interpolate(d8, size=x.shape[2:],
                                           mode='nearest')], 1))
        d4 = self._guidance(x, self.reduc4, self.lpg4)

        x = self.up2(x)
        x = self.iconv2(torch.cat(
            [x, F.interpolate(d4, size=x.shape[2:], mode='nearest')], 1))
        d2 = self._guidance(x, self.reduc2, self.lpg2)

        x = self.up1(x)
        d1 = torch.sigmoid(self.reduc1(x))
        x = self.iconv1(torch.cat([x, d1, _fit(d2, x), _fit(d4, x),
                                   _fit(d8, x)], 1))
        return torch.sigmoid(self.get_depth(x)) * self.max_depth


def _build_loss(cfg: dict) -> nn.Module:
    """An MMSeg loss, whatever the default scope (a gppf_mm-scoped runner
    would look ``SiLogLoss`` up in its own registry)."""
    return MODELS.build(dict(cfg, _scope_=cfg.get('_scope_', 'mmseg')))


def _fit(x: Tensor, like: Tensor) -> Tensor:
    """``x`` resized to ``like``'s spatial size where they differ (inputs
    whose size is not a multiple of 32)."""
    if x.shape[2:] == like.shape[2:]:
        return x
    return F.interpolate(x, size=like.shape[2:], mode='nearest')
