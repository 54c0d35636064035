# Copyright (c) gppf_mm contributors. All rights reserved.
from .multi_task_loops import MultiTaskTestLoop, MultiTaskValLoop
from .simt_loop import SIMTTrainLoop, rng_state, set_rng_state

__all__ = [
    'SIMTTrainLoop', 'MultiTaskValLoop', 'MultiTaskTestLoop', 'rng_state',
    'set_rng_state'
]
