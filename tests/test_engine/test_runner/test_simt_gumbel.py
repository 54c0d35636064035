# Copyright (c) gppf_mm contributors. All rights reserved.
"""SIMT on 2 gloo ranks with a Gumbel controller: every rank draws its own
noise, the noise generators resume exactly, and the per-rank states are
exchanged only at the iterations that write a checkpoint; the cap on one
rank's dataloader workers."""
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


def test_worker_cap_shares_and_rounding():
    from gppf_mm.engine.runner.simt_state import cap_workers
    loaders = dict(a=dict(num_workers=8), b=dict(num_workers=4),
                   c=dict(num_workers=0), d=dict(num_workers=2))
    # 14 asked, 7 allowed: a 4, b 2, d 1
    assert cap_workers(loaders, 7) == dict(a=4, b=2, c=0, d=1)
    # 14 asked, 5 allowed: shares 2.86 / 1.43 / 0.71 -> 2 / 1 / 0, and the
    # 2 left go to the largest remainders (d, then a)
    assert cap_workers(loaders, 5) == dict(a=3, b=1, c=0, d=1)
    assert cap_workers(loaders, 20) == dict(a=8, b=4, c=0, d=2)
    with pytest.raises(ValueError, match='max_workers must be an int'):
        cap_workers(loaders, -1)


def test_workers_are_capped_started_lazily_and_keep_the_order(tmp_path):
    """Worker processes (2 per task asked, 3 allowed in all) give the same
    batches as the main process would, and a task's workers start only
    when it is first drawn."""
    from test_simt_loop import expected_run, loader_cfg
    seen_iterators = []

    runner = make_runner(str(tmp_path), False, iters=3)
    cfg = runner._train_loop
    cfg['max_workers'] = 3
    for task in WEIGHTS:
        loader = dict(loader_cfg(task), num_workers=2,
                      persistent_workers=True)
        runner._train_dataloader[task] = loader
    loop = runner.train_loop  # built from the configs above
    assert {t: loop.dataloaders[t].num_workers for t in WEIGHTS} == dict(
        a=1, b=1, c=1)
    original = loop.next_batch

    def watched(task):
        seen_iterators.append(
            {t: loop._iterators.get(t) is not None for t in WEIGHTS})
        return original(task)

    loop.next_batch = watched
    result = train(runner)
    assert result['seen'] == expected_run(0, 1, 3)
    drawn = [t for t, _ in result['seen']]
    # before the first draw no task had started its workers
    assert seen_iterators[0] == dict(a=False, b=False, c=False)
    started = {t for t in WEIGHTS if loop._iterators.get(t) is not None}
    assert started == set(drawn)
