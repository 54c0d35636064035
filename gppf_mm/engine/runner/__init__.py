# Copyright (c) gppf_mm contributors. All rights reserved.
from .multi_task_loops import MultiTaskTestLoop, MultiTaskValLoop
from .simt_loop import SIMTTrainLoop
from .simt_state import preserved_rng_state, rng_state, set_rng_state
from .task_loaders import EndlessBatchSampler

__all__ = [
    'SIMTTrainLoop', 'MultiTaskValLoop', 'MultiTaskTestLoop', 'rng_state',
    'set_rng_state', 'preserved_rng_state', 'EndlessBatchSampler'
]
