# Copyright (c) gppf_mm contributors. All rights reserved.
from .dist import find_free_port, run_distributed
from .lego import assert_outputs_equal, count_unit_calls

__all__ = [
    'run_distributed', 'find_free_port', 'assert_outputs_equal',
    'count_unit_calls'
]
