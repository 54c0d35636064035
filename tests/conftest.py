# Copyright (c) gppf_mm contributors. All rights reserved.
import importlib.util
import os.path as osp

import pytest

import gppf_mm  # noqa: F401  (first: mmcv ops fallback, mmpretrain guard)

TOOLS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools')

SLOW_LIST = osp.join(osp.dirname(osp.abspath(__file__)), 'slow_tests.txt')


def slow_prefixes(path=SLOW_LIST):
    """The node-id prefixes of the slow tier (``slow_tests.txt``)."""
    with open(path) as f:
        return tuple(line.strip() for line in f
                     if line.strip() and not line.startswith('#'))


def pytest_collection_modifyitems(config, items):
    slow = slow_prefixes()
    for item in items:
        if item.nodeid.startswith(slow):
            item.add_marker(pytest.mark.slow)


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
