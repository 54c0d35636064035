# Copyright (c) gppf_mm contributors. All rights reserved.
"""A NaN loss on one rank: every rank takes the same decision in the same
iteration (2 gloo ranks)."""
import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper

from gppf_mm.engine.model_wrappers import GradientFusionWrapper
from gppf_mm.models.layers import CrossTaskBatchNorm2d
from gppf_mm.testing import run_distributed


class Shared(BaseModel):
    """A conv and a cross-task BN shared by tasks 'a' and 'b', one head
    each."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(2, 3, 1)
        self.bn = CrossTaskBatchNorm2d(3)
        self.heads = nn.ModuleDict({t: nn.Conv2d(3, 1, 1) for t in 'ab'})

    def forward(self, inputs, data_samples=None, mode='tensor', task=None):
        out = self.heads[task](self.bn(self.conv(inputs)))
        return dict(loss=(out**2).mean())


def batch(rank, step, nan_at):
    g = torch.Generator().manual_seed(100 * rank + step)
    x = torch.randn(2, 2, 3, 3, generator=g) + rank
    if (rank, step) == nan_at:
        x[0, 0, 0, 0] = float('nan')
    return dict(inputs=x, task='ab'[rank])


def train(rank, world_size, steps, nan_at, mode='skip'):
    model = Shared()
    wrapper = GradientFusionWrapper(model, nonfinite=mode)
    optim = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    try:
        for step in steps:
            wrapper.train_step(batch(rank, step, nan_at), optim)
    except FloatingPointError as e:
        return dict(error=str(e))
    return dict(skipped=wrapper.nonfinite.skipped,
                state={k: v.clone() for k, v in model.state_dict().items()})


def test_nan_on_one_rank_skips_the_update_everywhere():
    """Rank 1's batch of step 1 holds a NaN: both ranks skip that update
    and restore the norm's statistics, which equals a run without step 1."""
    guarded = run_distributed(train, 2, [0, 1, 2], (1, 1), timeout=90)
    reference = run_distributed(train, 2, [0, 2], None, timeout=90)
    for rank in range(2):
        assert guarded[rank]['skipped'] == 1
        assert reference[rank]['skipped'] == 0
        for key, value in reference[rank]['state'].items():
            got = guarded[rank]['state'][key]
            assert torch.isfinite(got.float()).all(), key
            torch.testing.assert_close(got, value, rtol=0, atol=0)
    for key, value in guarded[0]['state'].items():
        torch.testing.assert_close(guarded[1]['state'][key], value, rtol=0,
                                   atol=0)


def test_nan_raises_on_every_rank_naming_task_and_iteration():
    """Through the shared norm statistics rank 1's NaN reaches rank 0's
    loss too: both tasks are named."""
    results = run_distributed(train, 2, [0, 1, 2], (1, 1), 'raise',
                              timeout=90)
    for res in results:
        assert ("iteration 1: the loss of task(s) 'a' (rank 0), 'b' "
                '(rank 1) produced a non-finite value') in res['error'], res


def test_bad_arguments():
    with pytest.raises(ValueError, match='nonfinite'):
        GradientFusionWrapper(Shared(), nonfinite='ignore')
