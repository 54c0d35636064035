# Copyright (c) gppf_mm contributors. All rights reserved.
"""Compatibility of third-party packages with this stack's versions."""
import numpy as np


class _NumpyWithFloat:
    """``numpy`` as a module sees it, plus the ``np.float`` alias that NumPy
    1.24 removed (it was the builtin ``float``)."""

    float = float

    def __getattr__(self, name):
        return getattr(np, name)


def patch_lvis_numpy() -> bool:
    """Let ``lvis`` 0.5.3 (the last release on PyPI) evaluate under NumPy
    >= 1.24: its ``LVISEval.accumulate`` uses ``np.float``, so MMDet's
    ``LVISMetric`` fails with ``AttributeError: module 'numpy' has no
    attribute 'float'``. Only ``lvis.eval``'s own name ``np`` is replaced;
    NumPy itself is unchanged. Returns whether the patch applies."""
    if hasattr(np, 'float'):
        return False
    try:
        import lvis.eval
    except ImportError:
        return False
    if not isinstance(lvis.eval.np, _NumpyWithFloat):
        lvis.eval.np = _NumpyWithFloat()
    return True
