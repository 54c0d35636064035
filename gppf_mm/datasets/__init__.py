# Copyright (c) gppf_mm contributors. All rights reserved.
from .depth_split import DepthSplitDataset, KBCrop
from .holdout import holdout_indices, holdout_split
from .openimages import OpenImagesChallenge2019Dataset
from .task_dataset import TaskDataError, TaskDataset
from .task_sampler import (
    SAMPLING_MODES,
    ResumableInfiniteSampler,
    TaskSampler,
    normalise_task_weights,
    rank_index_stream,
    rank_stream_start,
    sampler_seed,
)
from .uodb import UODBDataset

__all__ = [
    'TaskSampler', 'ResumableInfiniteSampler', 'normalise_task_weights',
    'sampler_seed', 'rank_stream_start', 'rank_index_stream',
    'SAMPLING_MODES', 'TaskDataset', 'TaskDataError', 'UODBDataset',
    'DepthSplitDataset', 'KBCrop', 'holdout_split', 'holdout_indices',
    'OpenImagesChallenge2019Dataset'
]
