# Copyright (c) gppf_mm contributors. All rights reserved.
from .checkpoint import (
                         checkpoint_safe_globals,
                         gppf_checkpoint_loading,
                         load_checkpoint_file,
                         safe_torch_load,
)
from .dist import default_backend, find_free_port, prepare_dist_cfg
from .scope import build_in_scope, resolve_scopes, scope_of, with_scope
from .setup_env import register_all_modules

__all__ = [
    'register_all_modules', 'build_in_scope', 'resolve_scopes', 'scope_of',
    'with_scope',
    'safe_torch_load', 'checkpoint_safe_globals', 'gppf_checkpoint_loading',
    'load_checkpoint_file', 'prepare_dist_cfg',
    'default_backend', 'find_free_port'
]
