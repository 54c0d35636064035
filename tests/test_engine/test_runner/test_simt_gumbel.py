# Copyright (c) gppf_mm contributors. All rights reserved.
"""SIMT on 2 gloo ranks with a Gumbel controller: every rank draws its own
noise, the noise generators resume exactly, and the per-rank states are
exchanged only at the iterations that write a checkpoint."""
import os.path as osp

import pytest
import torch
from test_simt_loop import (
    CUT,
    ITERS,
    WEIGHTS,
    ToyMultiTask,
    make_runner,
    train,
    unwrap,
)

from gppf_mm.engine.runner import SIMTTrainLoop
from gppf_mm.engine.runner.simt_state import gumbel_seed
from gppf_mm.models.routing import GumbelController
from gppf_mm.testing import run_distributed
from gppf_mm.utils import safe_torch_load


class ToyRouted(ToyMultiTask):
    """The toy model with a soft-routed Gumbel controller scaling its
    trunk; records every routing sample."""

    def __init__(self):
        super().__init__()
        self.controller = GumbelController(list(WEIGHTS), num_layers=3,
                                           num_units=2, mode='soft')
        self.routes = []

    def forward(self, inputs, data_samples=None, mode='tensor', task=None):
        if mode == 'loss':
            weights = torch.stack([r.weights for r in
                                   self.controller.route(task)])
            self.routes.append((task, weights.detach().clone()))
            out = super().forward(inputs, data_samples, mode, task)
            key = f'{task}.loss_reg'
            return {key: out[key] * weights[:, 0].mean() * 2}
        return super().forward(inputs, data_samples, mode, task)


def worker(rank, world_size, work_dir):
    calls = []
    original = SIMTTrainLoop.state_dict

    def counted(self):
        calls.append(self.iter)
        return original(self)

    SIMTTrainLoop.state_dict = counted
    try:
        full_runner = make_runner(osp.join(work_dir, 'full'), True,
                                  model=ToyRouted())
        full = train(full_runner)
        full['routes'] = unwrap(full_runner).routes
        full['state_calls'] = list(calls)
        resumed_runner = make_runner(
            osp.join(work_dir, 'resumed'), True, model=ToyRouted(),
            resume_from=osp.join(work_dir, 'full', f'iter_{CUT}.pth'))
        resumed = train(resumed_runner)
        resumed['routes'] = unwrap(resumed_runner).routes
    finally:
        SIMTTrainLoop.state_dict = original
    return dict(full=full, resumed=resumed)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('simt_gumbel'))
    return work_dir, run_distributed(worker, 2, work_dir, timeout=180)


def test_ranks_draw_their_own_noise(runs):
    _, results = runs
    (r0, r1) = [res['full']['routes'] for res in results]
    assert len(r0) == len(r1) == ITERS
    # the same logits (zero at the start) with different noise
    assert not torch.equal(r0[0][1], r1[0][1])
    # rank 0's first sample is the one its seeded generator gives
    gen = torch.Generator().manual_seed(gumbel_seed(0, 0, 0))
    u = torch.rand((3, 2), generator=gen).clamp_(
        min=torch.finfo(torch.float32).tiny, max=1.0)
    noise = -torch.log(-torch.log(u))
    expected = torch.softmax(noise / 5.0, dim=-1)  # zero logits, tau 5
    torch.testing.assert_close(r0[0][1], expected, rtol=0, atol=1e-6)


def test_noise_resumes_exactly(runs):
    _, results = runs
    for res in results:
        full, resumed = res['full']['routes'], res['resumed']['routes']
        assert [t for t, _ in resumed] == [t for t, _ in full[CUT:]]
        for (_, a), (_, b) in zip(resumed, full[CUT:]):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_states_exchanged_only_at_checkpoints(runs):
    work_dir, results = runs
    for res in results:
        # iterations CUT and ITERS end with a checkpoint (iter is 0-based)
        assert res['full']['state_calls'] == [CUT - 1, ITERS - 1]
    ckpt = safe_torch_load(osp.join(work_dir, 'full', f'iter_{CUT}.pth'))
    assert [len(s['gumbel']) for s in ckpt['simt']] == [1, 1]
