# Copyright (c) gppf_mm contributors. All rights reserved.
from .bts_head import BTSHead, LocalPlanarGuidance, plane_from_features

__all__ = ['BTSHead', 'LocalPlanarGuidance', 'plane_from_features']
