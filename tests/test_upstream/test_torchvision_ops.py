# Copyright (c) gppf_mm contributors. All rights reserved.
"""torchvision's kernels in mmcv's place equal mmcv's compiled ops (when the
compiled build is installed) and a hand-written reference of each op (always),
forward and backward."""
import math
import os
import subprocess
import sys

import pytest
import torch

import gppf_mm  # noqa: F401  (installs the fallback where mmcv has no ops)
from gppf_mm.upstream import MMCVOpUnavailable, compiled_ops_available
from gppf_mm.upstream import torchvision_ops as tvo

COMPILED = compiled_ops_available()


def ref_nms(boxes, scores, thr, offset=0, order=None):
    """Greedy NMS by decreasing score (or in ``order``); suppress when
    IoU > thr."""
    if order is None:
        order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    keep, dead = [], set()
    for a, i in enumerate(order):
        if i in dead:
            continue
        keep.append(i)
        x1, y1, x2, y2 = boxes[i].tolist()
        ai = (x2 - x1 + offset) * (y2 - y1 + offset)
        for j in order[a + 1:]:
            u1, v1, u2, v2 = boxes[j].tolist()
            w = max(0., min(x2, u2) - max(x1, u1) + offset)
            h = max(0., min(y2, v2) - max(y1, v1) + offset)
            aj = (u2 - u1 + offset) * (v2 - v1 + offset)
            if w * h / (ai + aj - w * h) > thr:
                dead.add(j)
    return keep


def random_boxes(n, seed, size=50.):
    """Boxes in clusters (overlaps at every IoU level), whole pixels (the +1
    of offset=1 adds exactly in float32), scores without ties."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(max(n // 6, 1), 2, generator=g) * size
    pick = torch.randint(0, len(centres), (n, ), generator=g)
    xy = centres[pick] + torch.randn(n, 2, generator=g) * 2
    wh = torch.rand(n, 2, generator=g) * size / 4 + 2
    boxes = torch.cat([xy - wh / 2, xy + wh / 2], 1).round()
    scores = torch.randperm(n, generator=g).float() / n
    return boxes, scores


def _bilinear(feat, y, x):
    """mmcv / Detectron bilinear sample of feat (C, H, W) at (y, x)."""
    _, h, w = feat.shape
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return feat.new_zeros(feat.shape[0])
    y, x = max(y, 0.), max(x, 0.)
    y0, x0 = int(y), int(x)
    if y0 >= h - 1:
        y0 = y1 = h - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= w - 1:
        x0 = x1 = w - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    hy, hx = 1 - ly, 1 - lx
    return (hy * hx * feat[:, y0, x0] + hy * lx * feat[:, y0, x1]
            + ly * hx * feat[:, y1, x0] + ly * lx * feat[:, y1, x1])


def ref_roi_align(feat, rois, out_hw, scale, sampling, aligned):
    """RoIAlign (avg) from its definition, differentiable by autograd."""
    ph, pw = out_hw
    shift = 0.5 if aligned else 0.
    outs = []
    for roi in rois.tolist():
        b = int(roi[0])
        x1, y1, x2, y2 = (v * scale - shift for v in roi[1:])
        rw, rh = x2 - x1, y2 - y1
        if not aligned:
            rw, rh = max(rw, 1.), max(rh, 1.)
        bw, bh = rw / pw, rh / ph
        gh = sampling if sampling > 0 else math.ceil(rh / ph)
        gw = sampling if sampling > 0 else math.ceil(rw / pw)
        count = max(gh * gw, 1)
        cells = []
        for i in range(ph):
            for j in range(pw):
                acc = feat.new_zeros(feat.shape[1])
                for iy in range(gh):
                    y = y1 + i * bh + (iy + .5) * bh / gh
                    for ix in range(gw):
                        x = x1 + j * bw + (ix + .5) * bw / gw
                        acc = acc + _bilinear(feat[b], y, x)
                cells.append(acc / count)
        outs.append(torch.stack(cells, 1).view(-1, ph, pw))
    return torch.stack(outs) if outs else feat.new_zeros(0, feat.shape[1],
                                                         ph, pw)


def roi_case(seed, n=4, dtype=torch.float64, scale=1.0):
    """Features 9 x 11 and rois (image coordinates) around and across the
    map: inside, over the edges, smaller than a pixel and larger."""
    g = torch.Generator().manual_seed(seed)
    feat = torch.randn(2, 3, 9, 11, generator=g, dtype=dtype)
    xy = (torch.rand(n, 2, generator=g, dtype=dtype) * 11 - 2) / scale
    wh = (torch.rand(n, 2, generator=g, dtype=dtype) * 8 + 0.3) / scale
    idx = torch.randint(0, 2, (n, 1), generator=g).to(dtype)
    return feat, torch.cat([idx, xy, xy + wh], 1)


def fallback_roi_align(feat, rois, out_hw, scale, sampling, aligned):
    """Forward and input gradient (for grad_out) through the fallback."""
    out = feat.new_zeros(rois.size(0), feat.size(1), *out_hw)
    empty = feat.new_zeros(0)
    tvo.roi_align_forward(feat, rois, out, empty, empty, out_hw[0],
                          out_hw[1], scale, sampling, 1, aligned)
    return out


def fallback_roi_align_grad(feat, rois, grad_out, scale, sampling, aligned):
    grad = torch.zeros_like(feat)
    empty = feat.new_zeros(0)
    tvo.roi_align_backward(grad_out, rois, empty, empty, grad,
                           grad_out.size(2), grad_out.size(3), scale,
                           sampling, 1, aligned)
    return grad


# ------------------------------------------------------------------ nms --
@pytest.mark.parametrize('offset', [0, 1])
@pytest.mark.parametrize('thr', [0.3, 0.5, 0.7])
def test_nms_equals_reference(thr, offset):
    boxes, scores = random_boxes(60, seed=int(thr * 10) + offset)
    keep = tvo.nms(boxes, scores, iou_threshold=thr, offset=offset)
    assert keep.dtype == torch.long
    assert keep.tolist() == ref_nms(boxes, scores, thr, offset)
    assert 3 < len(keep) < 60  # the case suppresses something


def test_nms_ties_in_mmcv_order():
    """Equal scores (padded image regions give them) are visited in the
    order of mmcv's kernel, torch's descending sort, not a stable one."""
    boxes, scores = random_boxes(300, seed=9)
    scores = (scores * 4).floor() / 4  # 4 distinct scores
    order = scores.sort(0, descending=True)[1].tolist()
    assert order != sorted(range(300), key=lambda i: -float(scores[i]))
    keep = tvo.nms(boxes, scores, iou_threshold=0.5, offset=0)
    assert keep.tolist() == ref_nms(boxes, scores, 0.5, order=order)


def test_nms_empty_and_bad_offset():
    keep = tvo.nms(torch.zeros(0, 4), torch.zeros(0), iou_threshold=0.5,
                   offset=0)
    assert keep.shape == (0, ) and keep.dtype == torch.long
    with pytest.raises(ValueError, match='offset'):
        tvo.nms(torch.zeros(1, 4), torch.zeros(1), iou_threshold=.5,
                offset=2)


@pytest.mark.skipif(not COMPILED, reason="mmcv's compiled ops not installed")
@pytest.mark.parametrize('offset', [0, 1])
def test_nms_equals_mmcv_compiled(offset):
    """The same indices in the same order, ties included."""
    from mmcv.utils import ext_loader
    ext = ext_loader.load_ext('_ext', ['nms'])
    for seed in range(6):
        boxes, scores = random_boxes(200, seed)
        if seed % 2:  # ties
            scores = (scores * 5).floor() / 5
        for thr in (0.3, 0.5, 0.7):
            want = ext.nms(boxes, scores, iou_threshold=thr, offset=offset)
            got = tvo.nms(boxes, scores, iou_threshold=thr, offset=offset)
            assert torch.equal(got, want)


def test_batched_nms_through_mmcv_equals_reference():
    """mmcv.ops.batched_nms (whichever ops are installed) per class."""
    from mmcv.ops import batched_nms
    boxes, scores = random_boxes(80, seed=7)
    labels = torch.arange(80) % 3
    dets, keep = batched_nms(boxes, scores, labels,
                             dict(type='nms', iou_threshold=0.5))
    want = []
    for c in range(3):
        idx = (labels == c).nonzero().flatten()
        want += idx[ref_nms(boxes[idx], scores[idx], 0.5)].tolist()
    want.sort(key=lambda i: -float(scores[i]))
    assert keep.tolist() == want
    assert torch.equal(dets[:, :4], boxes[keep])


# ------------------------------------------------------------ RoIAlign --
VARIANTS = [(True, 0, 1.0), (True, 2, 0.5), (False, 0, 0.25),
            (False, 1, 1.0)]


@pytest.mark.parametrize('aligned,sampling,scale', VARIANTS)
def test_roi_align_equals_reference(aligned, sampling, scale):
    feat, rois = roi_case(seed=sampling + int(aligned) * 10, scale=scale)
    out = fallback_roi_align(feat, rois, (3, 2), scale, sampling, aligned)
    feat_ref = feat.clone().requires_grad_(True)
    ref = ref_roi_align(feat_ref, rois, (3, 2), scale, sampling, aligned)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    assert out.abs().sum() > 0
    grad_out = torch.randn_like(ref)
    ref.backward(grad_out)
    grad = fallback_roi_align_grad(feat, rois, grad_out, scale, sampling,
                                   aligned)
    torch.testing.assert_close(grad, feat_ref.grad, rtol=0, atol=1e-12)


def test_roi_align_empty_rois_and_max_mode():
    feat = torch.randn(1, 2, 5, 5)
    rois = torch.zeros(0, 5)
    out = fallback_roi_align(feat, rois, (2, 2), 1.0, 0, True)
    assert out.shape == (0, 2, 2, 2)
    grad = fallback_roi_align_grad(feat, rois, out, 1.0, 0, True)
    assert torch.equal(grad, torch.zeros_like(feat))
    empty = feat.new_zeros(0)
    with pytest.raises(MMCVOpUnavailable, match="roi_align_forward.*'max'"):
        tvo.roi_align_forward(feat, torch.zeros(1, 5), torch.zeros(1, 2, 2, 2),
                              empty, empty, 2, 2, 1.0, 0, 0, True)


@pytest.mark.skipif(not COMPILED, reason="mmcv's compiled ops not installed")
@pytest.mark.parametrize('aligned,sampling,scale', VARIANTS)
def test_roi_align_equals_mmcv_compiled(aligned, sampling, scale):
    from mmcv.utils import ext_loader
    ext = ext_loader.load_ext('_ext', ['roi_align_forward'])
    for seed in range(3):
        feat, rois = roi_case(seed, n=12, dtype=torch.float32, scale=scale)
        want = feat.new_zeros(12, 3, 7, 7)
        empty = feat.new_zeros(0)
        ext.roi_align_forward(feat, rois, want, empty, empty,
                              aligned_height=7, aligned_width=7,
                              spatial_scale=scale, sampling_ratio=sampling,
                              pool_mode=1, aligned=aligned)
        got = fallback_roi_align(feat, rois, (7, 7), scale, sampling, aligned)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
        grad_out = torch.randn_like(want)
        gwant = torch.zeros_like(feat)
        ext.roi_align_backward(grad_out, rois, empty, empty, gwant,
                               aligned_height=7, aligned_width=7,
                               spatial_scale=scale, sampling_ratio=sampling,
                               pool_mode=1, aligned=aligned)
        ggot = fallback_roi_align_grad(feat, rois, grad_out, scale, sampling,
                                       aligned)
        torch.testing.assert_close(ggot, gwant, rtol=1e-5, atol=1e-5)


# ---------------------------------------------- the fallback in place --
HIDE_EXT = r'''
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == 'mmcv._ext':
            raise ModuleNotFoundError("No module named 'mmcv._ext'")
sys.meta_path.insert(0, Hide())
'''

FALLBACK_RUN = HIDE_EXT + r'''
import gppf_mm, torch, mmcv
from gppf_mm.upstream import MMCVOpUnavailable, compiled_ops_available
from mmcv.ops import RoIAlign, batched_nms, nms
assert not compiled_ops_available()
assert sys.modules['mmcv._ext'].__gppf_fallback__
try:
    from mmcv.ops import DeformConv2d
    DeformConv2d(2, 2, 3)(torch.zeros(1, 2, 5, 5), torch.zeros(1, 18, 3, 3))
except MMCVOpUnavailable as e:
    assert "'deform_conv_forward'" in str(e) and 'GPPF_MMCV_OPS=compiled' \
        in str(e), e
else:
    raise AssertionError('an op gppf_mm does not supply ran')
case = torch.load(sys.argv[1])
_, keep = nms(case['boxes'], case['scores'], 0.5)
feat = case['feat'].requires_grad_(True)
out = RoIAlign((7, 7), 0.5, 0, aligned=True)(feat, case['rois'])
out.backward(case['grad'])
torch.save(dict(keep=keep, out=out.detach(), grad=feat.grad), sys.argv[2])
'''


def test_fallback_through_mmcv_ops(tmp_path):
    """With mmcv._ext hidden, `import gppf_mm` makes mmcv.ops import and run
    nms and RoIAlign forward + backward; unsupplied ops name themselves.
    The results equal this process's ops (the compiled ones, if present)."""
    from mmcv.ops import RoIAlign, nms
    boxes, scores = random_boxes(100, seed=3)
    feat, rois = roi_case(seed=5, n=10, dtype=torch.float32)
    grad = torch.randn(10, 3, 7, 7)
    torch.save(dict(boxes=boxes, scores=scores, feat=feat, rois=rois,
                    grad=grad), tmp_path / 'case.pth')
    proc = subprocess.run(
        [sys.executable, '-c', FALLBACK_RUN, str(tmp_path / 'case.pth'),
         str(tmp_path / 'out.pth')], capture_output=True, text=True,
        timeout=300, env=dict(os.environ, CUDA_VISIBLE_DEVICES=''))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = torch.load(tmp_path / 'out.pth')
    _, keep = nms(boxes, scores, 0.5)
    assert torch.equal(got['keep'], keep)
    feat = feat.clone().requires_grad_(True)
    out = RoIAlign((7, 7), 0.5, 0, aligned=True)(feat, rois)
    out.backward(grad)
    torch.testing.assert_close(got['out'], out.detach(), rtol=1e-6,
                               atol=1e-6)
    torch.testing.assert_close(got['grad'], feat.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_equals_cpu_through_mmcv_ops():
    """On CUDA tensors mmcv.ops (torchvision's CUDA kernels under the
    fallback) keeps the CPU's boxes and RoIAlign values and gradients."""
    from mmcv.ops import RoIAlign, nms
    boxes, scores = random_boxes(300, seed=11)
    _, keep = nms(boxes, scores, 0.5)
    _, keep_cuda = nms(boxes.cuda(), scores.cuda(), 0.5)
    assert torch.equal(keep_cuda.cpu(), keep)
    feat, rois = roi_case(seed=2, n=20, dtype=torch.float32, scale=0.25)
    grad = torch.randn(20, 3, 7, 7)
    results = []
    for device in ('cpu', 'cuda'):
        f = feat.to(device).requires_grad_(True)
        out = RoIAlign((7, 7), 0.25, 2, aligned=True)(f, rois.to(device))
        out.backward(grad.to(device))
        results.append((out.detach().cpu(), f.grad.cpu()))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5,
                               atol=1e-5)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-5,
                               atol=1e-5)
