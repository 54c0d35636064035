# Copyright (c) gppf_mm contributors. All rights reserved.
"""The paper's 8-task configs, GPPF-R50 and GPPF-SwinT, end to end on 2 gloo
ranks on mini copies of the 8 datasets in their real formats, with only
data roots and sizes overridden from the command line: every task trains,
every task is evaluated by its own upstream metric, and each run resumes
from its checkpoint."""
import glob
import json
import os.path as osp

import pytest

from gppf_mm.apis import train
from gppf_mm.testing.mini_pretrain import write_mini_gppf15m
from gppf_mm.testing.paper_shrink import paper_options

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
GPPF = osp.join(REPO, 'configs', 'gppf')
R50 = osp.join(GPPF, 'gppf_lego-r50-n2-soft_56xb-simt-500k_gppf-15m.py')
SWIN = osp.join(GPPF, 'gppf_lego-swin-t-n2-soft_56xb-simt-500k_gppf-15m.py')
ENV = dict(CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
TIMEOUT = 600
# each task's own metric, as MMDet / MMSeg / MMPretrain name it
METRICS = {
    'in21k/accuracy/top1', 'coco/coco/bbox_mAP', 'coco/coco/segm_mAP',
    'lvis/lvis/bbox_AP', 'lvis/lvis/segm_AP', 'objects365/coco/bbox_mAP',
    'openimages/openimages/AP50', 'ade20k/mIoU', 'coco_stuff/mIoU',
    'voc/mIoU'
}


@pytest.fixture(scope='module')
def mini(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('gppf15m'))
    write_mini_gppf15m(root)
    return root


def length(iters, validate):
    opts = [f'train_cfg.max_iters={iters}', 'default_hooks.logger.interval=1',
            'default_hooks.checkpoint.interval=2',
            f'train_cfg.val_interval={iters}', 'train_cfg.max_workers=0']
    return opts + ([] if validate else [f'train_cfg.val_begin={iters + 1}'])


def last_metrics(work_dir):
    """The validation metrics of the newest run in ``work_dir``."""
    path = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                     'scalars.json')))[-1]
    metrics = {}
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            if 'loss' not in record:
                metrics.update(record)
    return metrics


def trained_tasks(work_dir):
    """The tasks whose losses the logs show."""
    tasks = set()
    for path in glob.glob(osp.join(work_dir, '*', 'vis_data',
                                   'scalars.json')):
        with open(path) as f:
            for line in f:
                tasks.update(k.split('.')[0] for k in json.loads(line)
                             if '.loss' in k)
    return tasks


def train_evaluate_resume(config, mini, work):
    """2 iterations, a checkpoint, then resumed for a third iteration
    after which every task is evaluated."""
    opts = paper_options(config, mini)
    name = osp.basename(config)
    train(config, work, 2, opts + length(2, validate=False), ENV,
          label=f'{name} mini', timeout=TIMEOUT)
    assert osp.isfile(osp.join(work, 'iter_2.pth'))
    train(config, work, 2, opts + length(3, validate=True) + ['resume=True'],
          ENV, label=f'{name} mini resumed', timeout=TIMEOUT)
    with open(osp.join(work, 'train.log')) as f:
        assert 'resumed epoch: 0, iter: 2' in f.read()
    metrics = last_metrics(work)
    assert METRICS <= set(metrics), sorted(METRICS - set(metrics))
    for key in METRICS:
        assert 0 <= metrics[key] <= 100, (key, metrics[key])
    # 2 ranks x 3 iterations drew at least 2 of the 8 tasks
    assert len(trained_tasks(work)) >= 2


def test_gppf_r50_trains_evaluates_and_resumes(mini, tmp_path):
    train_evaluate_resume(R50, mini, str(tmp_path / 'r50'))


def test_gppf_swint_with_cascade_trains_evaluates_and_resumes(mini, tmp_path):
    train_evaluate_resume(SWIN, mini, str(tmp_path / 'swin'))
