# Copyright (c) gppf_mm contributors. All rights reserved.
from .task_sampler import (
                           ResumableInfiniteSampler,
                           TaskSampler,
                           normalise_task_weights,
                           sampler_seed,
)

__all__ = [
    'TaskSampler', 'ResumableInfiniteSampler', 'normalise_task_weights',
    'sampler_seed'
]
