# Copyright (c) gppf_mm contributors. All rights reserved.
"""SIMT end to end: Mask R-CNN + UperNet + classifier on one slim lego
backbone, 2 gloo ranks through tools/dist_train.sh, evaluation through
tools/test.py, and an exact resume."""
import glob
import json
import math
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from gppf_mm.datasets import TaskSampler
from gppf_mm.datasets.generation import generate_benchmark
from gppf_mm.testing import find_free_port
from gppf_mm.utils import safe_torch_load

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIG = osp.join(REPO, 'tests', 'data', 'configs', 'gppf_e2e_3tasks.py')
TIMEOUT = 600


@pytest.fixture(scope='module')
def bench(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('bench') / 'gppf_bench')
    generate_benchmark(root, seed=0, scale='tiny')
    return root


def run(cmd, bench, **env):
    full_env = dict(os.environ, GPPF_DATA_ROOT=bench,
                    PYTHON=sys.executable, OMP_NUM_THREADS='1', **env)
    proc = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc.stdout + proc.stderr


def dist_train(bench, work_dir, *extra):
    return run([
        'bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', work_dir,
        *extra
    ], bench, PORT=str(find_free_port()))


def scalars(work_dir):
    (path, ) = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope='module')
def full_run(bench, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('full'))
    log = dist_train(bench, work_dir)
    return work_dir, log


def test_training_runs_every_task(full_run):
    work_dir, log = full_run
    records = [r for r in scalars(work_dir) if 'loss' in r]
    assert [r['iter'] for r in records] == [1, 2, 3, 4, 5, 6]
    seen = set()
    for r in records:
        assert math.isfinite(r['loss'])
        seen |= {k.split('.')[0] for k in r if '.loss' in k}
        assert r['tau'] == pytest.approx(max(0.5, 5.0 - 4.5 * (r['iter'] -
                                                                1) / 4))
    # each rank drew its tasks from its own seeded sampler (seed 0 + rank)
    weights = dict(street_det=2.5, indoor_seg=1.0, shapes_cls=4.0)
    expected = {t: 0 for t in weights}
    per_rank = []
    for rank in range(2):
        sampler = TaskSampler(weights, seed=0, mode='simt', rank=rank)
        draws = [sampler.sample() for _ in range(6)]
        per_rank.append({t: draws.count(t) for t in weights})
        for t in draws:
            expected[t] += 1
    assert per_rank[0] != per_rank[1]
    assert seen == {t for t, n in expected.items() if n}
    last = records[-1]
    assert {t: last[f'{t}.iters'] for t in weights} == expected
    for name in ('iter_3.pth', 'iter_6.pth', 'selection_probs.pth'):
        assert osp.isfile(osp.join(work_dir, name))
    ckpt = safe_torch_load(osp.join(work_dir, 'iter_6.pth'))
    assert len(ckpt['simt']) == 2  # one state per rank
    assert [s['consumed'] for s in ckpt['simt']] == per_rank
    probs = torch.load(osp.join(work_dir, 'selection_probs.pth'))
    assert probs['probs'].shape == (3, 17, 2)
    assert 'unit selection' in log


def test_resume_equals_uninterrupted_run(full_run, bench, tmp_path):
    work_dir, _ = full_run
    resumed = str(tmp_path / 'resumed')
    dist_train(bench, resumed, '--resume', osp.join(work_dir, 'iter_3.pth'))
    a = safe_torch_load(osp.join(work_dir, 'iter_6.pth'))
    b = safe_torch_load(osp.join(resumed, 'iter_6.pth'))
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for key, value in a['state_dict'].items():
        torch.testing.assert_close(b['state_dict'][key], value, rtol=0,
                                   atol=1e-6, msg=key)
    for sa, sb in zip(a['simt'], b['simt']):
        assert sa['consumed'] == sb['consumed']
    # the resumed run logged iterations 4..6 with the same losses
    full = {r['iter']: r for r in scalars(work_dir) if 'loss' in r}
    for r in (r for r in scalars(resumed) if 'loss' in r):
        assert r['loss'] == pytest.approx(full[r['iter']]['loss'], rel=1e-5)


def test_tools_test_reports_every_task(full_run, bench, tmp_path):
    work_dir, _ = full_run
    out = str(tmp_path / 'metrics.json')
    run([
        sys.executable, 'tools/test.py', CONFIG,
        osp.join(work_dir, 'iter_6.pth'), '--work-dir',
        str(tmp_path / 'test'), '--out', out
    ], bench)
    with open(out) as f:
        metrics = json.load(f)
    assert 0 <= metrics['street_det/coco/bbox_mAP'] <= 1
    assert 0 <= metrics['street_det/coco/segm_mAP'] <= 1
    assert 0 <= metrics['indoor_seg/mIoU'] <= 100
    assert 0 <= metrics['shapes_cls/accuracy/top1'] <= 100
    one = str(tmp_path / 'one.json')
    run([
        sys.executable, 'tools/test.py', CONFIG,
        osp.join(work_dir, 'iter_6.pth'), '--task', 'shapes_cls',
        '--work-dir', str(tmp_path / 'test1'), '--out', one
    ], bench)
    with open(one) as f:
        only = json.load(f)
    assert set(only) == {'shapes_cls/accuracy/top1',
                         'shapes_cls/accuracy/top5'}
    assert only['shapes_cls/accuracy/top1'] == pytest.approx(
        metrics['shapes_cls/accuracy/top1'])


def test_tools_test_refuses_a_checkpoint_of_another_model(full_run, bench,
                                                          tmp_path):
    """A checkpoint of 2 lego units tested with a config of 3 (a run
    trained with --cfg-options and tested without them) stops before any
    testing with an error naming the file and the keys; MMEngine alone
    would only warn and test a partly initial model."""
    work_dir, _ = full_run
    ckpt = osp.join(work_dir, 'iter_6.pth')
    out = str(tmp_path / 'metrics.json')
    full_env = dict(os.environ, GPPF_DATA_ROOT=bench, OMP_NUM_THREADS='1')
    proc = subprocess.run([
        sys.executable, 'tools/test.py', CONFIG, ckpt, '--work-dir',
        str(tmp_path / 'test'), '--out', out, '--cfg-options',
        'model.backbone.num_units=3'
    ], cwd=REPO, env=full_env, capture_output=True, text=True,
        timeout=TIMEOUT)
    assert proc.returncode != 0
    assert f'{ckpt} does not fit the model of the config' in proc.stderr
    assert "'backbone.controller.logits.shapes_cls': (17, 2) in the " \
        'checkpoint, (17, 3) here' in proc.stderr
    assert 'missing key(s)' in proc.stderr  # the third units
    assert 'model.backbone.num_units' in proc.stderr
    assert not osp.exists(out)
