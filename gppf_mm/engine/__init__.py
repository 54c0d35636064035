# Copyright (c) gppf_mm contributors. All rights reserved.
from .gppf_runner import GPPFRunner
from .hooks import *  # noqa: F401,F403
from .model_wrappers import *  # noqa: F401,F403
from .runner import *  # noqa: F401,F403
from .task_config import expand_tasks, validate_tasks
from .task_errors import TaskConfigError

__all__ = ['GPPFRunner', 'TaskConfigError', 'expand_tasks', 'validate_tasks']
