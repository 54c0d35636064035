# Copyright (c) gppf_mm contributors. All rights reserved.
from .checkpoint_hook import GPPFCheckpointHook
from .extract_path_hook import ExtractPathHook
from .selection_logger_hook import SelectionLoggerHook
from .simt_state_hook import SIMTStateHook
from .temperature_hook import (
    GumbelTemperatureHook,
    controllers,
    linear_temperature,
)

__all__ = [
    'GPPFCheckpointHook', 'ExtractPathHook',
    'GumbelTemperatureHook', 'SelectionLoggerHook', 'SIMTStateHook',
    'linear_temperature', 'controllers'
]
