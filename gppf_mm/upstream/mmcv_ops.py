# Copyright (c) gppf_mm contributors. All rights reserved.
"""mmcv's compiled ops, or torchvision's kernels where mmcv has none.

mmcv 2.1.0 publishes no wheel with compiled ops for current torch, so an
install either compiles them from source (minutes on a CPU, and a matching
CUDA toolkit on a GPU machine) or goes without them. Without them every
``mmcv.ops`` module fails at import (``No module named 'mmcv._ext'``), and
mmdet with it.

:func:`install_mmcv_ext_fallback` fills that gap at ``import gppf_mm``: when
``mmcv._ext`` cannot be found it registers, under that name in
``sys.modules`` (nothing is written into mmcv's folder), a module whose
operators come from torchvision's prebuilt CPU and CUDA kernels:

- ``nms`` (all of mmcv's ``nms`` / ``batched_nms`` / ``NMSop`` paths);
- ``roi_align_forward`` and ``roi_align_backward`` in ``'avg'`` mode
  (``mmcv.ops.RoIAlign``, mmdet's RoI extractors and mask targets);
- ``get_compiler_version`` / ``get_compiling_cuda_version`` (environment
  reports).

These are the operators that the shipped configs reach (Mask / Faster /
Cascade R-CNN, UperNet, the classifiers and the depth head). Every other
operator stays importable, so that the modules that mention it load, and
raises :class:`MMCVOpUnavailable`, naming the operator, when called.

When mmcv's compiled ops are installed they are used and nothing here runs.
"""
import importlib.machinery
import importlib.util
import sys
import types

from .torchvision_ops import SUPPLIED, MMCVOpUnavailable, unavailable

EXT_NAME = 'mmcv._ext'


def compiled_ops_available():
    """Whether mmcv's own compiled ``_ext`` module is installed."""
    found = sys.modules.get(EXT_NAME)
    if found is not None:
        return not getattr(found, '__gppf_fallback__', False)
    try:
        return importlib.util.find_spec(EXT_NAME) is not None
    except (ImportError, ValueError):
        return False


def _fallback_module():
    module = types.ModuleType(EXT_NAME, 'mmcv ops from torchvision kernels '
                              '(gppf_mm.upstream)')
    module.__spec__ = importlib.machinery.ModuleSpec(
        EXT_NAME, None, origin='gppf_mm.upstream.torchvision_ops')
    module.__gppf_fallback__ = True
    for name, fn in SUPPLIED.items():
        setattr(module, name, fn)

    def __getattr__(name):
        if name.startswith('__'):
            raise AttributeError(name)
        return unavailable(name)

    module.__getattr__ = __getattr__
    return module


def install_mmcv_ext_fallback():
    """Register the torchvision-backed ``mmcv._ext`` if mmcv has none.

    Returns ``True`` when the fallback is (now) in place, ``False`` when
    mmcv's compiled ops are used. Idempotent.
    """
    if compiled_ops_available():
        return False
    if EXT_NAME not in sys.modules:
        module = _fallback_module()
        sys.modules[EXT_NAME] = module
        mmcv = sys.modules.get('mmcv')
        if mmcv is not None:
            mmcv._ext = module
    return True


__all__ = [
    'MMCVOpUnavailable', 'compiled_ops_available', 'install_mmcv_ext_fallback'
]
