# Copyright (c) gppf_mm contributors. All rights reserved.
from .conversion import convert_cross_task_bn, select_task_statistics
from .cross_task_bn import CrossTaskBatchNorm2d
from .local_bn import TaskLocalBatchNorm, convert_head_sync_bn

__all__ = [
    'CrossTaskBatchNorm2d', 'convert_cross_task_bn', 'select_task_statistics',
    'TaskLocalBatchNorm', 'convert_head_sync_bn'
]
