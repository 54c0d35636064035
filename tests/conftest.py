# Copyright (c) gppf_mm contributors. All rights reserved.
import importlib.util
import os.path as osp

import pytest

import gppf_mm  # noqa: F401  (first: mmcv ops fallback, mmpretrain guard)

TOOLS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools')


@pytest.fixture(scope='session')
def load_tool():
    """Import a script under tools/ as a module (tools is not a package)."""

    def load(relpath: str):
        name = 'tool_' + relpath.replace('/', '_').replace('.py', '')
        spec = importlib.util.spec_from_file_location(
            name, osp.join(TOOLS, relpath))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
