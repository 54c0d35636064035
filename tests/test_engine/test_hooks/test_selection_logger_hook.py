# Copyright (c) gppf_mm contributors. All rights reserved.
"""Selection-probability tables in the log and selection_probs.pth."""
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MMLogger

from gppf_mm.engine.hooks import SelectionLoggerHook
from gppf_mm.models.routing import GumbelController


class Backbone(nn.Module):

    def __init__(self):
        super().__init__()
        self.controller = GumbelController(['det', 'seg'], 3, 2)
        with torch.no_grad():
            self.controller.logits['det'][1] = torch.tensor([0.0, 2.0])

    def lego_layer_display_names(self):
        return ['s1.0', 's1.1', 's2.0']


class Model(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = Backbone()


class Messages:

    def __init__(self):
        self.lines = []

    def info(self, msg):
        self.lines.append(msg)


def test_logs_table_every_interval_and_saves(tmp_path):
    with pytest.raises(ValueError, match='interval'):
        SelectionLoggerHook(interval=0)
    hook = SelectionLoggerHook(interval=2)
    runner = SimpleNamespace(
        model=Model(), logger=Messages(), work_dir=str(tmp_path), iter=0)
    for it in range(5):
        runner.iter = it
        hook.after_train_iter(runner, batch_idx=it)
    # iterations 2 and 4 (1-based) are logged
    assert len(runner.logger.lines) == 2
    table = runner.logger.lines[-1]
    assert 'at iter 4' in table and 's1.1' in table
    det_row = [ln for ln in table.splitlines() if ln.startswith('det')][0]
    p = torch.softmax(torch.tensor([0.0, 2.0]), 0)[1]
    assert f'1:{float(p):.2f}' in det_row
    hook.after_train(runner)
    saved = torch.load(osp.join(str(tmp_path), 'selection_probs.pth'),
                       weights_only=True)
    assert saved['tasks'] == ['det', 'seg']
    assert saved['layers'] == ['s1.0', 's1.1', 's2.0']
    assert saved['probs'].shape == (2, 3, 2)
    assert saved['history_iters'] == [2, 4]
    assert saved['history'].shape == (2, 2, 3, 2)
    torch.testing.assert_close(saved['probs'][0, 1, 1], p)


def test_model_without_controller_is_skipped(tmp_path):
    hook = SelectionLoggerHook(interval=1)
    runner = SimpleNamespace(
        model=nn.Linear(2, 2), logger=MMLogger.get_instance('sel_none'),
        work_dir=str(tmp_path), iter=0)
    hook.after_train_iter(runner, batch_idx=0)
    hook.after_train(runner)
    assert not osp.exists(osp.join(str(tmp_path), 'selection_probs.pth'))


def run_iters(hook, runner, start, stop):
    """after_train_iter for 0-based iterations start..stop-1; the det
    logits change every iteration so that history entries differ."""
    ctrl = runner.model.backbone.controller
    for it in range(start, stop):
        runner.iter = it
        with torch.no_grad():
            ctrl.logits['det'][0] = torch.tensor([0.0, 0.1 * (it + 1)])
        hook.after_train_iter(runner, batch_idx=it)


def test_history_survives_resume(tmp_path):
    runner = SimpleNamespace(
        model=Model(), logger=Messages(), work_dir=str(tmp_path), iter=0)
    hook = SelectionLoggerHook(interval=2)
    run_iters(hook, runner, 0, 6)
    assert hook.history_iters == [2, 4, 6]
    checkpoint = dict(meta=dict(iter=6), state_dict={})
    hook.before_save_checkpoint(runner, checkpoint)
    path = osp.join(str(tmp_path), 'iter_6.pth')
    torch.save(checkpoint, path)
    saved = torch.load(path, weights_only=True)
    assert saved['meta']['selection_history']['iters'] == [2, 4, 6]
    assert saved['meta']['selection_history']['probs'].shape == (3, 2, 3, 2)

    # resume at iteration k = 4: entries of iterations <= 4 only
    saved['meta']['iter'] = 4
    fresh = SelectionLoggerHook(interval=2)
    fresh.after_load_checkpoint(runner, saved)
    assert fresh.history_iters == [2, 4]
    for a, b in zip(fresh.history, hook.history[:2]):
        torch.testing.assert_close(a, b)
    runner.iter = 4
    fresh.before_train(runner)
    assert fresh.history_iters == [2, 4]
    run_iters(fresh, runner, 4, 8)
    fresh.after_train(runner)
    out = torch.load(osp.join(str(tmp_path), 'selection_probs.pth'),
                     weights_only=True)
    assert out['history_iters'] == [2, 4, 6, 8]
    assert out['history'].shape == (4, 2, 3, 2)
    torch.testing.assert_close(out['history'][:3], torch.stack(hook.history))

    # the project's checkpoint loader restores it too
    from gppf_mm.utils import safe_torch_load
    again = SelectionLoggerHook(interval=2)
    again.after_load_checkpoint(runner, safe_torch_load(path))
    assert again.history_iters == [2, 4, 6]


def test_history_dropped_when_only_weights_are_loaded(tmp_path):
    runner = SimpleNamespace(
        model=Model(), logger=Messages(), work_dir=str(tmp_path), iter=0)
    hook = SelectionLoggerHook(interval=1)
    run_iters(hook, runner, 0, 3)
    checkpoint = dict(meta=dict(iter=3))
    hook.before_save_checkpoint(runner, checkpoint)
    fresh = SelectionLoggerHook(interval=1)
    fresh.after_load_checkpoint(runner, checkpoint)
    assert fresh.history_iters == [1, 2, 3]
    runner.iter = 0  # load_from without resume: training starts at 0
    fresh.before_train(runner)
    assert fresh.history_iters == [] and fresh.history == []
    # a checkpoint without a history leaves the hook as it is
    fresh.after_load_checkpoint(runner, dict(meta=dict(iter=3)))
    assert fresh.history_iters == []


@pytest.mark.parametrize('num_units', [2, 3])
def test_plot_selection_history(tmp_path, num_units):
    from gppf_mm.visualization import plot_selection_history
    layers = ['Stem'] + [f'Res2.{i}' for i in range(4)]
    logits = torch.linspace(0, 3, 4)[:, None, None, None] * torch.randn(
        1, 2, len(layers), num_units, generator=torch.Generator().manual_seed(
            0))
    history = torch.softmax(logits, dim=-1)
    out = plot_selection_history([10, 20, 30, 40], history, ['det', 'seg'],
                                 layers, str(tmp_path / 'fig11.png'))
    with open(out, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    # a list of (T, L, N) tensors works too
    plot_selection_history([1], [history[0]], ['det', 'seg'], layers,
                           str(tmp_path / 'one.png'))
    assert osp.getsize(str(tmp_path / 'one.png')) > 0
    with pytest.raises(ValueError, match='iterations'):
        plot_selection_history([1, 2], history, ['det', 'seg'], layers,
                               str(tmp_path / 'bad.png'))
    with pytest.raises(ValueError, match='layer names'):
        plot_selection_history([10, 20, 30, 40], history, ['det', 'seg'],
                               layers[:2], str(tmp_path / 'bad.png'))
