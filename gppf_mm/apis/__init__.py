# Copyright (c) gppf_mm contributors. All rights reserved.
"""Running experiments: launch training/evaluation jobs, report results."""
from .jobs import (
                   JobError,
                   device_plan,
                   evaluate,
                   iteration_overrides,
                   last_checkpoint,
                   last_val_metrics,
                   single_task_iters,
                   train,
                   write_run_config,
)
from .report import (
                   headline,
                   markdown_table,
                   task_columns,
                   task_results_table,
                   write_csv,
)

__all__ = [
    'JobError', 'device_plan', 'evaluate', 'iteration_overrides',
    'last_checkpoint', 'last_val_metrics', 'single_task_iters', 'train',
    'write_run_config',
    'headline', 'markdown_table', 'task_columns', 'task_results_table',
    'write_csv'
]
