# Copyright (c) gppf_mm contributors. All rights reserved.
import importlib.util
import os.path as osp

import pytest

import gppf_mm  # noqa: F401  (first: mmcv ops fallback, mmpretrain guard)

TOOLS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools')

# The tests that took 5 s or more in a full run's --durations on the 2-core
# CI machine (training runs of real configs, 2-process fault tests, fresh
# interpreters). They carry the `slow` marker: `make test-quick` leaves
# them out, `make test` runs everything. Every module keeps faster unit
# tests in the quick tier.
SLOW = (
    'tests/test_e2e/',
    'tests/test_tools/test_table1_and_demo.py::test_demo_end_to_end',
    'tests/test_tools/test_benchmark_gradient_fusion.py::'
    'test_benchmark_runs_on_two_ranks',
    'tests/test_downstream/test_cls_transfer.py::test_grid_search_',
    'tests/test_downstream/test_cls_transfer.py::'
    'test_cls_config_trains_on_its_mini_dataset',
    'tests/test_downstream/test_downstream_configs.py::test_dyfinetune_',
    'tests/test_downstream/test_downstream_configs.py::test_swin_kitti_',
    'tests/test_downstream/test_downstream_configs.py::test_kitti_eigen_',
    'tests/test_downstream/test_downstream_configs.py::'
    'test_detection_config_trains',
    'tests/test_downstream/test_downstream_configs.py::'
    'test_classification_config_trains',
    'tests/test_downstream/test_downstream_configs.py::'
    'test_depth_config_trains',
    'tests/test_downstream/test_uodb_configs.py::test_uodb_config_trains_',
    'tests/test_downstream/test_uodb_configs.py::test_uodb_dyfinetune_',
    'tests/test_engine/test_faults/test_lost_rank.py::test_a_killed_rank_',
    'tests/test_engine/test_faults/test_collective_timeout.py::'
    'test_stalled_collective_',
    'tests/test_engine/test_hooks/test_checkpoint_hook.py::'
    'test_killed_during_a_save_',
    'tests/test_engine/test_upstream_tasks.py::test_table1_configs_validate',
    'tests/test_engine/test_model_wrappers/test_collective_check.py::'
    'test_ignored_norm_gets_zero_gradients',
    'tests/test_engine/test_model_wrappers/test_nonfinite.py::'
    'test_nan_on_one_rank_skips_the_update_everywhere',
    'tests/test_house/test_import_graph.py::'
    'test_every_subpackage_imports_alone',
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.startswith(SLOW):
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
