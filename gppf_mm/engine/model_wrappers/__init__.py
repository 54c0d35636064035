# Copyright (c) gppf_mm contributors. All rights reserved.
from .gradient_fusion import GradientFusionWrapper

__all__ = ['GradientFusionWrapper']
