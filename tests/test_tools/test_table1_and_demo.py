# Copyright (c) gppf_mm contributors. All rights reserved.
"""The Table 1 planner (budget split, rows), result tables and the demo
end to end on tiny generated data."""
import os
import os.path as osp
import sys
import time

import pytest
from mmengine.config import Config

from gppf_mm.apis import (
    headline,
    iteration_overrides,
    markdown_table,
    task_columns,
    write_run_config,
)
from gppf_mm.datasets.generation import generate_benchmark

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'gppf',
                  'gppf_lego-r50-slim-n2-soft_2xb-simt-450it_gppf-bench.py')


@pytest.fixture(scope='module')
def cfg():
    return Config.fromfile(CONFIG)


def test_single_task_budget_split(load_tool):
    tool = load_tool('analysis_tools/table1_small.py')
    # weights 2.5, 2.5, 1, 1, 4 (sum 11) of T = 220 iterations
    split = tool.single_task_iters(
        dict(a=2.5, b=2.5, c=1.0, d=1.0, e=4.0), 220)
    assert split == dict(a=50, b=50, c=20, d=20, e=80)
    assert sum(split.values()) == 220
    assert tool.single_task_iters(dict(a=1.0, b=1000.0), 10)['a'] == 1
    with pytest.raises(ValueError, match='sum to > 0'):
        tool.single_task_iters(dict(a=0.0), 10)


def test_rows_of_the_plan(load_tool, cfg):
    tool = load_tool('analysis_tools/table1_small.py')
    runs = tool.plan_runs(cfg, tool.ROWS, 115)
    names = [r[1] for r in runs]
    assert names == [
        'single_street_det', 'single_aerial_det', 'single_indoor_seg',
        'single_nature_seg', 'single_shapes_cls', 'static', 'static_no_ctbn',
        'dynamic_n2', 'dynamic_n3', 'per_batch'
    ]
    single = {r[1]: r[3] for r in runs if r[0] == 'single-task'}
    # weights 3 / 3 / 1.5 / 1.5 / 2.5 of 11.5
    assert single == dict(single_street_det=30, single_aerial_det=30,
                          single_indoor_seg=15, single_nature_seg=15,
                          single_shapes_cls=25)
    by_name = {r[1]: r for r in runs}
    assert 'model.backbone.num_units=3' in by_name['dynamic_n3'][4]
    assert 'train_cfg.sampling=per_batch' in by_name['per_batch'][4]
    assert 'model.cross_task_bn=False' in by_name['static_no_ctbn'][4]
    assert 'model.cross_task_bn=False' not in by_name['static'][4]
    assert by_name['static'][2] is None  # every task
    assert by_name['single_nature_seg'][2] == ['nature_seg']


def test_run_config_holds_the_rows_model(load_tool, cfg, tmp_path):
    """A row's options are merged into its config.py, which its training
    and its evaluation both read: tools/test.py builds what was trained."""
    tool = load_tool('analysis_tools/table1_small.py')
    by_name = {r[1]: r for r in tool.plan_runs(cfg, tool.ROWS, 115)}
    _, name, tasks, _, opts = by_name['static_no_ctbn']
    path = write_run_config(cfg, tasks, str(tmp_path / 'a.py'), opts)
    run = Config.fromfile(path)
    assert run.model.backbone.num_units == 1
    assert run.model.cross_task_bn is False
    assert cfg.model.backbone.num_units == 2  # the base is unchanged
    _, _, tasks, _, opts = by_name['single_shapes_cls']
    run = Config.fromfile(write_run_config(cfg, tasks, str(tmp_path / 'b.py'),
                                           opts))
    assert list(run.tasks) == ['shapes_cls']
    assert run.model.backbone.num_units == 1
    assert run.model.backbone.routing_mode == cfg.model.backbone.routing_mode
    _, _, tasks, _, opts = by_name['per_batch']
    run = Config.fromfile(write_run_config(cfg, tasks, str(tmp_path / 'c.py'),
                                           opts))
    assert run.train_cfg.sampling == 'per_batch'
    assert run.train_cfg.max_iters == cfg.train_cfg.max_iters
    with pytest.raises(ValueError, match='key=value'):
        write_run_config(cfg, None, str(tmp_path / 'd.py'), ['num_units'])


def test_iteration_overrides_scale_the_schedule(cfg):
    opts = iteration_overrides(cfg, 100, validate=False)
    # warm-up 50 of 450 -> 11 (rounded 11.1), cosine 50..450 -> 11..100
    assert 'train_cfg.max_iters=100' in opts
    assert 'train_cfg.val_begin=101' in opts
    assert 'default_hooks.checkpoint.interval=100' in opts
    assert 'param_scheduler.0.end=11' in opts
    assert 'param_scheduler.1.begin=11' in opts
    assert 'param_scheduler.1.end=100' in opts
    # a warm-up that would round to nothing keeps one iteration
    opts = iteration_overrides(cfg, 3)
    assert 'param_scheduler.0.end=1' in opts
    assert 'param_scheduler.1.begin=0' in opts
    assert 'param_scheduler.1.end=3' in opts
    with pytest.raises(ValueError, match='>= 1'):
        iteration_overrides(cfg, 0)


def test_headline_columns_and_missing_detections(cfg):
    columns = task_columns(cfg)
    assert [c[0] for c in columns['street_det']] == ['box AP', 'mask AP']
    assert [c[0] for c in columns['indoor_seg']] == ['mIoU']
    assert [c[0] for c in columns['shapes_cls']] == ['top-1']
    metrics = {
        'street_det/coco/bbox_mAP': 0.125,
        'street_det/coco/segm_mAP': 0.25,
        'indoor_seg/mIoU': 31.5,
        'shapes_cls/accuracy/top1': 40.0,
    }
    assert headline(metrics, 'street_det', columns['street_det']) == {
        'box AP': 12.5, 'mask AP': 25.0}
    # MMDet reports nothing for a model that detects nothing: AP 0
    assert headline(metrics, 'aerial_det', columns['aerial_det']) == {
        'box AP': 0.0, 'mask AP': 0.0}
    assert headline(metrics, 'shapes_cls', columns['shapes_cls']) == {
        'top-1': 40.0}
    table = markdown_table(['method', 'x'], [['static', 1.25], ['b', None]])
    assert table.splitlines() == [
        '| method | x |', '|---|---|', '| static | 1.2 |', '| b | - |']


def test_demo_end_to_end(load_tool, tmp_path, monkeypatch):
    root = str(tmp_path / 'bench')
    generate_benchmark(root, seed=0, scale='tiny')
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    demo = load_tool('demo.py')
    work_dir = str(tmp_path / 'demo')
    metrics = demo.main([
        '--iters', '2', '--nproc', '2', '--data-root', root, '--work-dir',
        work_dir
    ])
    for key in ('indoor_seg/mIoU', 'nature_seg/mIoU',
                'shapes_cls/accuracy/top1'):
        assert key in metrics
    assert osp.isfile(osp.join(work_dir, 'train', 'iter_2.pth'))
    assert os.path.getsize(osp.join(work_dir, 'selection.png')) > 1000
    with open(osp.join(work_dir, 'results.md')) as f:
        lines = f.read().splitlines()
    # one row per headline metric: 2 detection tasks x 2, 2 seg, 1 cls
    assert len(lines) == 2 + 7
    assert any(line.startswith('| shapes_cls | top-1 |') for line in lines)


def test_job_that_hangs_silently_is_stopped(tmp_path):
    from gppf_mm.apis.jobs import JobError, run_logged
    cmd = [sys.executable, '-c', 'import time; time.sleep(60)']
    start = time.time()
    with pytest.raises(JobError, match='still running after 2 s'):
        run_logged(cmd, str(tmp_path / 'log.txt'), 'hang', timeout=2)
    assert time.time() - start < 30
    failing = [sys.executable, '-c', 'print("boom"); raise SystemExit(3)']
    with pytest.raises(JobError, match=r'exit 3(.|\n)*boom'):
        run_logged(failing, str(tmp_path / 'log2.txt'), 'fail')
