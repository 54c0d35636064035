# Copyright (c) gppf_mm contributors. All rights reserved.
from .benchmark import (TASKS, default_root, ensure_benchmark,
                        generate_benchmark)

__all__ = ['generate_benchmark', 'ensure_benchmark', 'default_root', 'TASKS']
