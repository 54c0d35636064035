# Copyright (c) gppf_mm contributors. All rights reserved.
"""Cross-task BN collectives stay in step when a task's loss ignores some
norms, and a norm run twice in one step is refused (2 gloo ranks)."""
import re

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper

from gppf_mm.engine.model_wrappers import GradientFusionWrapper
from gppf_mm.engine.model_wrappers.collective_check import unreached
from gppf_mm.models.layers import CrossTaskBatchNorm2d
from gppf_mm.testing import run_distributed


class TwoStages(BaseModel):
    """Two conv + cross-task BN stages. Task 'all' uses the second stage's
    output, 'first' only the first one's (a head that ignores the last
    backbone output), 'first_tied' is 'first' with the second output tied
    to the loss by hand, 'twice' runs the second stage twice."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(2, 3, 1)
        self.bn1 = CrossTaskBatchNorm2d(3)
        self.conv2 = nn.Conv2d(3, 3, 1)
        self.bn2 = CrossTaskBatchNorm2d(3)
        self.head = nn.Conv2d(3, 1, 1)

    def forward(self, inputs, data_samples=None, mode='tensor', task=None):
        o1 = self.bn1(self.conv1(inputs))
        o2 = self.bn2(self.conv2(o1))
        if task == 'all':
            out = self.head(o2)
        elif task in ('first', 'first_tied'):
            out = self.head(o1)
        elif task == 'twice':
            out = self.head(o2) + self.head(self.bn2(self.conv2(o1)))
        else:
            raise ValueError(task)
        loss = (out**2).mean()
        if task == 'first_tied':
            loss = loss + 0.0 * o2.sum()
        return dict(loss=loss)


def batch(rank, task):
    g = torch.Generator().manual_seed(rank)
    return dict(inputs=torch.randn(2, 2, 3, 3, generator=g) + rank,
                task=task)


def steps(rank, world_size, tasks, mode='zero_grad'):
    """Two SGD steps of ``tasks[rank]``; the fused gradients of each step
    and the final weights."""
    model = TwoStages()
    wrapper = GradientFusionWrapper(model, unused_norms=mode)
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    fused = []
    step = optim.step

    def capturing_step(**kwargs):
        fused.append({n: p.grad.clone() for n, p in model.named_parameters()
                      if p.grad is not None})
        step(**kwargs)

    optim.step = capturing_step
    for _ in range(2):
        wrapper.train_step(batch(rank, tasks[rank]), optim)
    return dict(fused=fused, tied=sorted(
        wrapper.collectives.names[i]
        for i in wrapper.collectives.tied.get(tasks[rank], ())),
        state={k: v.clone() for k, v in model.state_dict().items()})


def expect_error(rank, world_size, tasks, mode):
    try:
        steps(rank, world_size, tasks, mode)
    except RuntimeError as e:
        return str(e)
    return None


def test_unreached_by_hand():
    x = torch.ones(2, requires_grad=True)
    a, b, c = x * 2, x * 3, x * 4
    loss = (a + c).sum()
    assert unreached(loss, [a, b, c]) == [1]


def test_ignored_norm_gets_zero_gradients_and_collectives_stay_in_step():
    """Rank 0 runs 'all', rank 1 'first': before the check, rank 1 skipped
    bn2's backward all-reduce and the ranks hung. Now the fused gradients
    equal those of a rank 1 that ties bn2's output to its loss by hand
    (through cross-task BN, rank 1's conv2 input changes rank 0's
    statistics, so its gradient is not zero)."""
    auto = run_distributed(steps, 2, ['all', 'first'], timeout=90)
    hand = run_distributed(steps, 2, ['all', 'first_tied'], timeout=90)
    assert auto[1]['tied'] == ['bn2'] and auto[0]['tied'] == []
    assert hand[1]['tied'] == []
    for a, h in zip(auto[1]['fused'], hand[1]['fused']):
        assert set(a) == set(h)
        for name in a:
            torch.testing.assert_close(a[name], h[name], rtol=0, atol=1e-7)
    assert auto[1]['fused'][0]['conv2.weight'].abs().sum() > 0
    # both ranks hold the same weights
    for key, value in auto[0]['state'].items():
        torch.testing.assert_close(auto[1]['state'][key], value, rtol=0,
                                   atol=0)


@pytest.mark.parametrize('tasks, mode, message', [
    (['first', 'first'], 'error',
     r"task 'first' does not depend on the output of 1 cross-task norm\(s\) "
     r'\(bn2\)'),
    (['twice', 'twice'], 'zero_grad',
     r"task 'twice': the cross-task norm bn2 ran twice"),
])
def test_refused_with_a_message_naming_task_and_norm(tasks, mode, message):
    errors = run_distributed(expect_error, 2, tasks, mode, timeout=90)
    for error in errors:
        assert error is not None
        assert re.search(message, error), error
