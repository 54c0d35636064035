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
