# Copyright (c) gppf_mm contributors. All rights reserved.
"""Validation / test over every task with each task's own metric."""
import uuid

import pytest
import torch
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from gppf_mm.engine.runner import MultiTaskValLoop
from gppf_mm.registry import METRICS

SIZES = dict(a=5, b=3)


class ToyDataset(Dataset):

    def __init__(self, name, size):
        self.size = size
        self.metainfo = dict(task=name, classes=(name, ))

    def __len__(self):
        return self.size

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([float(i)]), data_samples=int(i))


class ToyModel(BaseModel):
    """Predicts ``scale[task] * input`` per sample."""

    scale = dict(a=1.0, b=10.0)

    def forward(self, inputs, data_samples=None, mode='tensor', task=None):
        assert mode == 'predict'
        return [
            dict(task=task, pred=self.scale[task] * float(x), index=i)
            for x, i in zip(inputs, data_samples)
        ]


@METRICS.register_module(force=True)
class ToyMeanMetric(BaseMetric):
    """Mean prediction and sample count; checks its dataset_meta."""
    default_prefix = 'toy'

    def process(self, data_batch, data_samples):
        for sample in data_samples:
            assert sample['task'] == self.dataset_meta['task']
            self.results.append(sample['pred'])

    def compute_metrics(self, results):
        return dict(mean=sum(results) / len(results), count=len(results))


class Recorder(Hook):

    def __init__(self):
        self.calls = []

    def before_val(self, runner):
        self.calls.append('before_val')

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        self.calls.append(('iter', data_batch['task'], batch_idx))

    def after_val_epoch(self, runner, metrics=None):
        self.calls.append(('after_val_epoch', dict(metrics)))

    def after_val(self, runner):
        self.calls.append('after_val')


def loader(task):
    return dict(
        dataset=ToyDataset(task, SIZES[task]),
        batch_size=2,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False))


def make_runner(tmp_path, **val_cfg):
    recorder = Recorder()
    runner = Runner(
        model=ToyModel(),
        work_dir=str(tmp_path),
        experiment_name=f'mtval_{uuid.uuid4().hex}',
        val_dataloader={t: loader(t)
                        for t in SIZES},
        val_evaluator=dict(
            a=dict(type='ToyMeanMetric'),
            b=[dict(type='ToyMeanMetric', prefix='other')]),
        val_cfg=dict(type='MultiTaskValLoop', **val_cfg),
        test_dataloader={t: loader(t)
                         for t in SIZES},
        test_evaluator={t: dict(type='ToyMeanMetric')
                        for t in SIZES},
        test_cfg=dict(type='MultiTaskTestLoop'),
        custom_hooks=[recorder],
        default_scope='gppf_mm')
    return runner, recorder


def test_metrics_are_prefixed_by_task(tmp_path):
    runner, recorder = make_runner(tmp_path)
    metrics = runner.val()
    # a: mean of 0..4 = 2; b: 10 * mean of 0..2 = 10
    assert metrics == {
        'a/toy/mean': pytest.approx(2.0),
        'a/toy/count': 5,
        'b/other/mean': pytest.approx(10.0),
        'b/other/count': 3
    }
    assert recorder.calls[0] == 'before_val'
    assert recorder.calls[1:6] == [('iter', 'a', 0), ('iter', 'a', 1),
                                   ('iter', 'a', 2), ('iter', 'b', 0),
                                   ('iter', 'b', 1)]
    assert recorder.calls[6] == ('after_val_epoch', metrics)
    assert recorder.calls[7] == 'after_val'
    assert runner.message_hub.get_scalar('val/b/other/mean').current() == \
        pytest.approx(10.0)


def test_test_loop_and_task_subset(tmp_path):
    runner, _ = make_runner(tmp_path, tasks=['b'])
    assert runner.val() == {
        'b/other/mean': pytest.approx(10.0),
        'b/other/count': 3
    }
    assert set(runner.test()) == {
        'a/toy/mean', 'a/toy/count', 'b/toy/mean', 'b/toy/count'
    }


def test_config_errors_name_the_task(tmp_path):
    runner, _ = make_runner(tmp_path)
    loaders = {t: loader(t) for t in SIZES}
    with pytest.raises(ValueError, match="task 'c' has no val dataloader"):
        MultiTaskValLoop(runner, loaders, {}, tasks=['c'])
    with pytest.raises(ValueError, match="task 'b' has a val dataloader but "
                       'no val evaluator'):
        MultiTaskValLoop(runner, loaders, dict(a=dict(type='ToyMeanMetric')))
    with pytest.raises(TypeError, match="task 'a'"):
        MultiTaskValLoop(runner, loaders, dict(a=3, b=3))
    with pytest.raises(ValueError, match='got one dataloader config'):
        MultiTaskValLoop(runner, loader('a'), {})
    loop = MultiTaskValLoop(
        runner, loaders,
        dict(a=Evaluator(ToyMeanMetric()), b=dict(type='ToyMeanMetric')))
    assert loop.evaluators['a'].dataset_meta['task'] == 'a'
    assert loop.evaluators['b'].dataset_meta['task'] == 'b'
