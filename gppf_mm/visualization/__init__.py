# Copyright (c) gppf_mm contributors. All rights reserved.
from .selection import plot_selection

__all__ = ['plot_selection']
