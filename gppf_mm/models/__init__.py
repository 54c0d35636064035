# Copyright (c) gppf_mm contributors. All rights reserved.
from .backbones import *  # noqa: F401,F403
from .decode_heads import *  # noqa: F401,F403
from .gppf import GPPF, SharedBackbonePlaceholder, TaskDataPreprocessor
from .layers import *  # noqa: F401,F403
from .routing import *  # noqa: F401,F403

__all__ = ['GPPF', 'SharedBackbonePlaceholder', 'TaskDataPreprocessor']
