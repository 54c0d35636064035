# Copyright (c) gppf_mm contributors. All rights reserved.
"""mmcv.ops's nms and RoIAlign give the right numbers, whether mmcv's
compiled ops or torchvision's kernels (gppf_mm.upstream) serve them."""
import torch
from mmcv.ops import nms, roi_align

import gppf_mm  # noqa: F401  (conftest imports it first as well)


def test_nms_hand_checked():
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.],
                          [20., 20., 30., 30.], [0., 0., 10., 9.]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # IoU(box3, box0) = 90/100 = 0.9 > 0.5 -> box0 suppressed by box3;
    # IoU(box3, box1) = 72/118 = 0.610 > 0.5 -> box1 suppressed;
    # box2 does not overlap anything.
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [3, 2]
    assert torch.allclose(dets[:, 4], torch.tensor([0.95, 0.7]))
    assert torch.equal(dets[:, :4], boxes[[3, 2]])
    # with a threshold above 0.610 box1 survives (0.9 still suppresses box0)
    _, keep = nms(boxes, scores, iou_threshold=0.65)
    assert keep.tolist() == [3, 1, 2]


def test_roi_align_hand_checked():
    # feature value = x coordinate (pixel centres at x + 0.5 with aligned)
    feat = torch.arange(8, dtype=torch.float32).repeat(8, 1)[None, None]
    rois = torch.tensor([[0., 2., 2., 6., 6.]])
    out = roi_align(feat, rois, output_size=(2, 2), spatial_scale=1.0,
                    sampling_ratio=1, pool_mode='avg', aligned=True)
    # aligned=True shifts by -0.5: bins cover x in [1.5, 3.5] and
    # [3.5, 5.5]; one sample at each bin centre x=2.5 / 4.5 -> values
    # interpolate the x-ramp to 2.5 and 4.5
    expected = torch.tensor([[[[2.5, 4.5], [2.5, 4.5]]]])
    assert out.shape == (1, 1, 2, 2)
    assert torch.allclose(out, expected, atol=1e-6)
    # gradients flow back to the features
    feat.requires_grad_(True)
    roi_align(feat, rois, (2, 2), 1.0, 1, 'avg', True).sum().backward()
    assert torch.isclose(feat.grad.sum(), torch.tensor(4.0))
