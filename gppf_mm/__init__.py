# Copyright (c) gppf_mm contributors. All rights reserved.
import mmcv
import mmengine
from mmengine.utils import digit_version

from .version import __version__, version_info

mmcv_minimum_version = '2.1.0'
mmcv_maximum_version = '2.2.0'
mmengine_minimum_version = '0.10.7'
mmengine_maximum_version = '1.0.0'

_mmcv = digit_version(mmcv.__version__)
_mmengine = digit_version(mmengine.__version__)
assert (digit_version(mmcv_minimum_version) <= _mmcv <
        digit_version(mmcv_maximum_version)), (
            f'MMCV=={mmcv.__version__} is used but incompatible with gppf_mm. '
            f'Please install mmcv>={mmcv_minimum_version}, '
            f'<{mmcv_maximum_version}.')
assert (digit_version(mmengine_minimum_version) <= _mmengine <
        digit_version(mmengine_maximum_version)), (
            f'MMEngine=={mmengine.__version__} is used but incompatible with '
            f'gppf_mm. Please install mmengine>={mmengine_minimum_version}, '
            f'<{mmengine_maximum_version}.')

# Before mmdet, mmseg, mmpretrain or mmcv.ops are imported: torchvision's
# kernels where mmcv's compiled ops are not installed, and mmpretrain
# without its multimodal models under transformers >= 5 (gppf_mm/upstream).
from .upstream import prepare_upstream  # noqa: E402

prepare_upstream()

from . import utils  # noqa: E402,F401

__all__ = ['__version__', 'version_info']
