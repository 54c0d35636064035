# Copyright (c) gppf_mm contributors. All rights reserved.
"""What the upstream packages need before they are imported.

``import gppf_mm`` calls :func:`prepare_upstream` before it imports any of
mmdet, mmseg, mmpretrain or ``mmcv.ops``; this package imports none of them.
"""
from .mmcv_ops import (
    MMCVOpUnavailable,
    compiled_ops_available,
    install_mmcv_ext_fallback,
)
from .mmpretrain_guard import guard_mmpretrain_multimodal


def prepare_upstream():
    """mmcv ops from torchvision where mmcv has none compiled, and
    mmpretrain without its multimodal models under transformers >= 5."""
    return dict(mmcv_ops_fallback=install_mmcv_ext_fallback(),
                mmpretrain_multimodal_off=guard_mmpretrain_multimodal())


__all__ = [
    'MMCVOpUnavailable', 'compiled_ops_available',
    'guard_mmpretrain_multimodal', 'install_mmcv_ext_fallback',
    'prepare_upstream'
]
