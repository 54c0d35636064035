# Copyright (c) gppf_mm contributors. All rights reserved.
from .dist import find_free_port, run_distributed

__all__ = ['run_distributed', 'find_free_port']
