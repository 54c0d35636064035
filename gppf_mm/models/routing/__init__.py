# Copyright (c) gppf_mm contributors. All rights reserved.
from .gumbel_controller import ROUTING_MODES, GumbelController, Routing
from .lego_backbone import (
    LegoBackboneMixin,
    collapse_lego_state_dict,
    expand_lego_state_dict,
)
from .lego_layer import LegoLayer

__all__ = [
    'GumbelController', 'Routing', 'ROUTING_MODES', 'LegoLayer',
    'LegoBackboneMixin', 'collapse_lego_state_dict',
    'expand_lego_state_dict'
]
