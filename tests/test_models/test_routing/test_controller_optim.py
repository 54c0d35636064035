# Copyright (c) gppf_mm contributors. All rights reserved.
"""The controller's selection logits get their own optimisation settings
from the config (``paramwise_cfg.custom_keys``): a larger lr, no weight
decay, and the optimiser the config names (SGD in the paper's schedule,
AdamW in the demo)."""
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from gppf_mm.models.backbones import LegoResNet

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
CONFIGS = [
    'configs/_base_/schedules/simt_sgd_iter.py',
    'configs/gppf/gppf_lego-r50-slim-n2-soft_2xb-simt-450it_gppf-bench.py',
]


class Tiny(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = LegoResNet(
            depth=18, base_channels=8, num_units=2, tasks=['a', 'b'])
        self.head = nn.Linear(64, 3)


@pytest.mark.parametrize('config', CONFIGS)
def test_controller_param_groups(config):
    cfg = Config.fromfile(osp.join(REPO, config))
    model = Tiny()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    assert type(optim.optimizer).__name__ == cfg.optim_wrapper.optimizer.type
    base_lr = cfg.optim_wrapper.optimizer.lr
    base_wd = cfg.optim_wrapper.optimizer.weight_decay
    mult = cfg.optim_wrapper.paramwise_cfg.custom_keys[
        'controller.logits'].lr_mult
    assert mult > 1
    logits = {id(p) for p in model.backbone.controller.parameters()}
    seen = 0
    for group in optim.optimizer.param_groups:
        (param, ) = group['params']
        if id(param) in logits:
            seen += 1
            assert group['lr'] == pytest.approx(base_lr * mult)
            assert group['weight_decay'] == 0
        else:
            assert group['lr'] == pytest.approx(base_lr)
            assert group['weight_decay'] == pytest.approx(base_wd)
    assert seen == 2  # one logits tensor per task


@pytest.mark.parametrize('config', CONFIGS)
def test_one_step_moves_only_by_the_configured_lr(config):
    """A hand-computed first step of the logits, without the weight decay
    that would pull them back to uniform: SGD moves them by
    lr * mult * grad; Adam(W)'s first step is lr * mult * grad / (|grad| +
    eps), a step of lr * mult whatever the gradient's scale."""
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.optim_wrapper.pop('clip_grad')
    model = Tiny()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    logits = model.backbone.controller.logits['a']
    with torch.no_grad():
        logits.fill_(0.5)
    grad = torch.randn_like(logits)
    logits.grad = grad.clone()
    optim.step()
    mult = cfg.optim_wrapper.paramwise_cfg.custom_keys[
        'controller.logits'].lr_mult
    lr = cfg.optim_wrapper.optimizer.lr * mult
    if cfg.optim_wrapper.optimizer.type == 'SGD':
        expected = 0.5 - lr * grad
    else:
        assert cfg.optim_wrapper.optimizer.type == 'AdamW'
        expected = 0.5 - lr * grad / (grad.abs() + 1e-8)
    torch.testing.assert_close(logits.detach(), expected)
    # the other task's logits had no gradient and stay where they were
    assert model.backbone.controller.logits['b'].abs().max() < 1e-6
