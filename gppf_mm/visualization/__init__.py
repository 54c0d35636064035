# Copyright (c) gppf_mm contributors. All rights reserved.
from .cka import cka_report, model_cka, plot_cka_heatmap
from .losses import plot_task_losses, read_task_losses
from .selection import plot_selection, plot_selection_history

__all__ = [
    'plot_selection', 'plot_selection_history', 'plot_cka_heatmap',
    'model_cka', 'cka_report', 'plot_task_losses', 'read_task_losses'
]
