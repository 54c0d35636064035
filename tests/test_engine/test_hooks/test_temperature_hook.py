# Copyright (c) gppf_mm contributors. All rights reserved.
"""Linear Gumbel temperature schedule, set on every controller."""
from types import SimpleNamespace

import pytest
import torch.nn as nn
from mmengine.logging import MessageHub

from gppf_mm.engine.hooks import GumbelTemperatureHook, linear_temperature
from gppf_mm.models.routing import GumbelController
from gppf_mm.registry import HOOKS


class TwoControllers(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.controller = GumbelController(['a', 'b'], 3, 2)
        self.extra = GumbelController(['a'], 1, 2, tau=1.0)


def fake_runner(it, max_iters=1000, epoch=0, max_epochs=10, name='tau'):
    return SimpleNamespace(
        iter=it,
        max_iters=max_iters,
        epoch=epoch,
        max_epochs=max_epochs,
        model=TwoControllers(),
        message_hub=MessageHub.get_instance(f'test_tau_{name}'))


def taus(runner):
    return [
        m.tau for m in runner.model.modules()
        if isinstance(m, GumbelController)
    ]


def test_bad_arguments():
    with pytest.raises(ValueError, match='> 0'):
        GumbelTemperatureHook(start=0.0)
    with pytest.raises(ValueError, match='end_iter'):
        GumbelTemperatureHook(end_iter=-1)
    with pytest.raises(ValueError, match='end_ratio'):
        GumbelTemperatureHook(end_ratio=1.5)


def test_linear_temperature_by_hand():
    # 5.0 -> 0.01 over 450000 iterations: slope 4.99 / 450000 per iter
    assert linear_temperature(0, 5.0, 0.01, 450000) == 5.0
    assert linear_temperature(225000, 5.0, 0.01, 450000) == pytest.approx(
        2.505)
    assert linear_temperature(90000, 5.0, 0.01, 450000) == pytest.approx(
        4.002)
    assert linear_temperature(450000, 5.0, 0.01, 450000) == 0.01
    assert linear_temperature(499999, 5.0, 0.01, 450000) == 0.01
    assert linear_temperature(3, 5.0, 0.01, 0) == 0.01


@pytest.mark.parametrize('it, expected', [(0, 5.0), (225000, 2.505),
                                          (449999, 5.0 - 4.99 * 449999 /
                                           450000), (450000, 0.01),
                                          (500000, 0.01)])
def test_hook_sets_every_controller_and_logs(it, expected):
    hook = HOOKS.build(
        dict(type='GumbelTemperatureHook', start=5.0, end=0.01,
             end_iter=450000))
    runner = fake_runner(it, max_iters=500000, name=str(it))
    hook.before_train_iter(runner, batch_idx=it)
    assert taus(runner) == pytest.approx([expected] * 2)
    assert runner.message_hub.get_scalar('train/tau').current() == \
        pytest.approx(expected)


def test_end_ratio_of_max_iters_and_resume():
    hook = GumbelTemperatureHook(start=5.0, end=0.5, end_ratio=0.8)
    # end at 0.8 * 1000 = 800: tau(400) = 5 - 4.5 / 2
    runner = fake_runner(400, max_iters=1000, name='ratio')
    hook.before_train_iter(runner, batch_idx=400)
    assert taus(runner) == pytest.approx([2.75, 2.75])
    # a resumed run: a fresh model and hook, the runner at iteration 600;
    # the value is set before the first iteration already
    resumed = fake_runner(600, max_iters=1000, name='resumed')
    GumbelTemperatureHook(start=5.0, end=0.5, end_ratio=0.8).before_train(
        resumed)
    assert taus(resumed) == pytest.approx([5.0 - 4.5 * 600 / 800] * 2)


def test_by_epoch():
    hook = GumbelTemperatureHook(start=4.0, end=1.0, by_epoch=True,
                                 end_ratio=0.5)
    runner = fake_runner(12345, epoch=2, max_epochs=10, name='epoch')
    hook.before_train_iter(runner, batch_idx=0)
    assert taus(runner) == pytest.approx([4.0 - 3.0 * 2 / 5] * 2)


def test_extending_a_run_keeps_tau_continuous():
    """A 300-iteration run (end at 0.9 * 300 = 270) resumed with max_iters
    600: the saved end (270) is kept, so tau stays 0.01; the ratio of the
    new length would give 5 - 4.99 * 300 / 540 = 2.228."""
    hook = GumbelTemperatureHook(start=5.0, end=0.01, end_ratio=0.9)
    first = fake_runner(300, max_iters=300, name='first')
    hook.before_train_iter(first, batch_idx=300)
    assert taus(first) == pytest.approx([0.01] * 2)
    ckpt = {}
    hook.before_save_checkpoint(first, ckpt)
    assert ckpt['gumbel_temperature']['end_step'] == 270

    extended = fake_runner(300, max_iters=600, name='extended')
    extended._resume = True
    fresh = GumbelTemperatureHook(start=5.0, end=0.01, end_ratio=0.9)
    fresh.after_load_checkpoint(extended, ckpt)
    fresh.before_train(extended)
    assert taus(extended) == pytest.approx([0.01] * 2)
    # and it is saved again as it was
    again = {}
    fresh.before_save_checkpoint(extended, again)
    assert again['gumbel_temperature']['end_step'] == 270

    # a mid-run checkpoint (iteration 100 of 300) extended to 600: tau
    # continues from 5 - 4.99 * 100 / 270 on the old line
    mid = fake_runner(100, max_iters=600, name='mid')
    mid._resume = True
    fresh = GumbelTemperatureHook(start=5.0, end=0.01, end_ratio=0.9)
    fresh.after_load_checkpoint(mid, ckpt)
    fresh.before_train(mid)
    assert taus(mid) == pytest.approx([5.0 - 4.99 * 100 / 270] * 2)

    # weights only (load_from without resume): a new schedule
    finetune = fake_runner(300, max_iters=600, name='finetune')
    fresh = GumbelTemperatureHook(start=5.0, end=0.01, end_ratio=0.9)
    fresh.after_load_checkpoint(finetune, ckpt)
    fresh.before_train(finetune)
    assert taus(finetune) == pytest.approx([5.0 - 4.99 * 300 / 540] * 2)

    # an explicit end_iter in the config wins over the checkpoint
    explicit = fake_runner(300, max_iters=600, name='explicit')
    explicit._resume = True
    fresh = GumbelTemperatureHook(start=5.0, end=0.01, end_iter=500)
    fresh.after_load_checkpoint(explicit, ckpt)
    fresh.before_train(explicit)
    assert taus(explicit) == pytest.approx([5.0 - 4.99 * 300 / 500] * 2)


def test_freeze_at_end_stops_the_logits_and_only_them():
    """With ``freeze_at_end`` the logits learn until the temperature reaches
    its end and take no AdamW step from there on (the grads are None, so
    AdamW skips them); without it they keep learning."""
    import torch
    for freeze in (True, False):
        hook = GumbelTemperatureHook(start=1.0, end=0.01, end_iter=3,
                                     freeze_at_end=freeze)
        runner = fake_runner(0, max_iters=6, name=f'freeze{freeze}')
        ctrl = runner.model.backbone.controller
        ctrl.manual_seed(0)
        other = nn.Linear(2, 1)
        opt = torch.optim.AdamW(
            list(runner.model.parameters()) + list(other.parameters()),
            lr=0.1)
        seen = []
        for it in range(6):
            runner.iter = it
            hook.before_train_iter(runner, batch_idx=it)
            before = ctrl.logits['a'].detach().clone()
            w = torch.stack([r.weights for r in ctrl.route('a')])
            loss = (w[:, 0] * torch.arange(3.0)).sum() + other(w).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen.append(not torch.equal(before, ctrl.logits['a']))
        assert seen == ([True] * 3 + [False] * 3 if freeze else [True] * 6)
        assert all(p.requires_grad for p in other.parameters())
        assert ctrl.logits['b'].requires_grad is not freeze
