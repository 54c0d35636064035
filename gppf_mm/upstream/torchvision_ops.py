# Copyright (c) gppf_mm contributors. All rights reserved.
"""mmcv ``_ext`` operators with mmcv's signatures on torchvision's kernels.

Each function takes exactly the arguments that ``mmcv.ops`` passes to its
compiled operator of the same name and, like it, writes into the output
tensors it is given.
"""
import torch
import torchvision  # noqa: F401  (registers torch.ops.torchvision)

HOW_TO_COMPILE = (
    "install mmcv with its compiled ops: 'GPPF_MMCV_OPS=compiled bash "
    "tools/setup_env.sh' (builds them from source, see docs/get_started.md)")


class MMCVOpUnavailable(RuntimeError):
    """An mmcv operator that neither mmcv nor torchvision provides here."""


def unavailable(name):
    """A stand-in for mmcv's compiled ``name`` that says what is missing."""

    def op(*args, **kwargs):
        raise MMCVOpUnavailable(
            f"mmcv op '{name}' is not available: mmcv's compiled ops are not "
            f'installed and gppf_mm supplies only {sorted(SUPPLIED)} from '
            f'torchvision; {HOW_TO_COMPILE}')

    op.__name__ = name
    return op


def nms(boxes, scores, iou_threshold, offset=0):
    """mmcv's ``nms``: kept indices by decreasing score.

    The boxes are visited in the order of mmcv's kernels, ``scores.sort(0,
    descending=True)`` (not stable: boxes of equal score, e.g. from padded
    image regions, keep mmcv's order rather than torchvision's stable one),
    by handing torchvision strictly decreasing stand-in scores in that
    order. ``offset=1`` (the legacy "+1" box size) equals torchvision's NMS
    on boxes whose right and bottom edges are moved out by one.
    """
    if offset not in (0, 1):
        raise ValueError(f'nms: offset must be 0 or 1, got {offset}')
    if boxes.numel() == 0:
        return boxes.new_zeros(0, dtype=torch.long)
    order = scores.sort(0, descending=True)[1]
    boxes = boxes.index_select(0, order)
    if offset:
        boxes[:, 2:4] += 1
    rank = -torch.arange(len(order), device=boxes.device, dtype=boxes.dtype)
    # mmcv's kernels take the threshold as a C++ float: compare against
    # the same float32 value (an IoU of exactly 0.3 is not above 0.3f)
    threshold = float(torch.tensor(float(iou_threshold), dtype=torch.float32))
    keep = torch.ops.torchvision.nms(boxes, rank, threshold)
    return order[keep]


def _check_avg(pool_mode, op):
    if pool_mode != 1:
        raise MMCVOpUnavailable(
            f"mmcv op '{op}' with pool_mode='max' is not available: "
            "torchvision's RoIAlign averages only; use pool_mode='avg' or "
            f'{HOW_TO_COMPILE}')


def roi_align_forward(input, rois, output, argmax_y, argmax_x,
                      aligned_height, aligned_width, spatial_scale,
                      sampling_ratio, pool_mode, aligned):
    """mmcv's ``roi_align_forward`` (``pool_mode`` 1 = avg) into ``output``."""
    _check_avg(pool_mode, 'roi_align_forward')
    if rois.size(0):
        output.copy_(torch.ops.torchvision.roi_align(
            input.contiguous(), rois.to(input.dtype).contiguous(),
            float(spatial_scale), int(aligned_height), int(aligned_width),
            int(sampling_ratio), bool(aligned)))


def roi_align_backward(grad_output, rois, argmax_y, argmax_x, grad_input,
                       aligned_height, aligned_width, spatial_scale,
                       sampling_ratio, pool_mode, aligned):
    """mmcv's ``roi_align_backward``: adds the input gradient to
    ``grad_input`` (zeros when mmcv calls it)."""
    _check_avg(pool_mode, 'roi_align_backward')
    if not rois.size(0):
        return
    n, c, h, w = grad_input.shape
    grad_input.add_(torch.ops.torchvision._roi_align_backward(
        grad_output.contiguous(), rois.to(grad_output.dtype).contiguous(),
        float(spatial_scale), int(aligned_height), int(aligned_width), n, c,
        h, w, int(sampling_ratio), bool(aligned)))


def get_compiler_version():
    return 'none (mmcv ops from torchvision ' + torchvision.__version__ + ')'


def get_compiling_cuda_version():
    return 'not available'


SUPPLIED = {
    'nms': nms,
    'roi_align_forward': roi_align_forward,
    'roi_align_backward': roi_align_backward,
    'get_compiler_version': get_compiler_version,
    'get_compiling_cuda_version': get_compiling_cuda_version,
}
