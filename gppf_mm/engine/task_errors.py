# Copyright (c) gppf_mm contributors. All rights reserved.
"""The error of a malformed task in a GPPF config."""


class TaskConfigError(ValueError):
    """A task of a GPPF config is malformed."""


def task_error(task: str, field: str, msg: str) -> TaskConfigError:
    """The error, naming the task and the field."""
    return TaskConfigError(f'task {task!r}, field {field!r}: {msg}')
