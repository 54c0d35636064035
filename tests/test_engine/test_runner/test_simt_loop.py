# Copyright (c) gppf_mm contributors. All rights reserved.
"""SIMT training loop: per-rank task draws, lazy loaders, merged logs and an
exact resume, with a real MMEngine Runner on a toy two-task model."""
import itertools
import os.path as osp
import uuid

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dataset import DefaultSampler
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel, is_model_wrapper
from torch.utils.data import BatchSampler, DataLoader, Dataset

from gppf_mm.datasets import TaskSampler, rank_index_stream
from gppf_mm.engine import GPPFRunner
from gppf_mm.engine.hooks import SIMTStateHook
from gppf_mm.engine.runner import EndlessBatchSampler, SIMTTrainLoop
from gppf_mm.engine.runner.simt_state import (
    rescale_states,
    rng_state,
    set_rng_state,
)
from gppf_mm.engine.runner.task_loaders import (
    prepare_task_loader,
    skip_batches,
)
from gppf_mm.registry import METRICS
from gppf_mm.testing import run_distributed
from gppf_mm.utils import safe_torch_load

WEIGHTS = dict(a=1.0, b=1.0, c=0.1)
SIZES = dict(a=7, b=5, c=6)
BATCH = dict(a=2, b=3, c=2)
ITERS, CUT = 8, 4


class ToyDataset(Dataset):
    """Sample ``i`` is a 4-vector of value ``i``; ``calls`` counts decodes."""

    def __init__(self, name, size):
        self.name = name
        self.size = size
        self.calls = 0
        self.metainfo = dict(task=name)

    def __len__(self):
        return self.size

    def __getitem__(self, i):
        self.calls += 1
        return dict(inputs=torch.full((4, ), float(i)), data_samples=int(i))


class ToyMultiTask(BaseModel):
    """A shared linear trunk with dropout (so the global RNG matters) and a
    linear head per task; records what it trained on."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.trunk = nn.Linear(4, 4)
        self.heads = nn.ModuleDict({t: nn.Linear(4, 1) for t in WEIGHTS})
        self.tasks = list(WEIGHTS)
        self.seen = []
        self.losses = []

    def forward(self, inputs, data_samples=None, mode='tensor', task=None):
        x = torch.stack(inputs) / 10
        y = self.heads[task](F.dropout(self.trunk(x), 0.5, training=True))
        loss = ((y - 1)**2).mean()
        if mode == 'loss':
            self.seen.append((task, list(data_samples)))
            self.losses.append(float(loss))
            return {f'{task}.loss_reg': loss}
        return [dict(pred=float(v)) for v in y]


@METRICS.register_module(force=True)
class ToyCountMetric(BaseMetric):
    default_prefix = 'toy'

    def process(self, data_batch, data_samples):
        self.results.extend(s['pred'] for s in data_samples)

    def compute_metrics(self, results):
        return dict(count=len(results))


def loader_cfg(task, sampler=None):
    return dict(
        dataset=ToyDataset(task, SIZES[task]),
        batch_size=BATCH[task],
        num_workers=0,
        sampler=sampler or dict(type='ResumableInfiniteSampler'))


def make_runner(work_dir, distributed, resume_from=None, iters=ITERS,
                samplers=None, val_interval=1000, model=None, **cfg):
    samplers = samplers or {}
    cfg.setdefault('custom_hooks', [dict(type='SIMTStateHook')])
    runner = GPPFRunner(
        model=model or ToyMultiTask(),
        work_dir=work_dir,
        experiment_name=f'simt_{uuid.uuid4().hex}',
        train_dataloader={
            t: loader_cfg(t, samplers.get(t))
            for t in WEIGHTS
        },
        train_cfg=dict(
            type='SIMTTrainLoop', max_iters=iters, task_weights=WEIGHTS,
            val_interval=val_interval),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=CUT,
                            by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        log_processor=dict(by_epoch=False),
        launcher='pytorch' if distributed else 'none',
        cfg=dict(model_wrapper_cfg=dict(type='gppf_mm.GradientFusionWrapper')),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        randomness=dict(seed=0),
        default_scope='gppf_mm',
        load_from=resume_from,
        resume=resume_from is not None,
        **cfg)
    return runner


def unwrap(runner):
    return runner.model.module if is_model_wrapper(
        runner.model) else runner.model


def train(runner):
    runner.train()
    loop = runner.train_loop
    model = unwrap(runner)
    return dict(
        seen=model.seen,
        losses=model.losses,
        calls={t: loop.dataloaders[t].dataset.calls
               for t in WEIGHTS},
        consumed=dict(loop.consumed),
        hub={
            k: v.data[0].tolist()
            for k, v in runner.message_hub.log_scalars.items()
            if k.startswith(('train/', 'val/'))
        },
        wrapped=type(runner.model).__name__,
        state={k: v.clone()
               for k, v in model.state_dict().items()})


def expected_run(rank, world_size, iters=ITERS):
    """(task, indices) per iteration from TaskSampler and the index streams
    alone."""
    draws = TaskSampler(WEIGHTS, 0, 'simt', rank, world_size)
    streams = {
        t: rank_index_stream(SIZES[t], 0, True, rank, world_size)
        for t in WEIGHTS
    }
    return [(t, list(itertools.islice(streams[t], BATCH[t])))
            for t in (draws.sample() for _ in range(iters))]


def simt_worker(rank, world_size, work_dir):
    full_dir = osp.join(work_dir, 'full')
    full = train(make_runner(full_dir, distributed=True))
    resumed = train(
        make_runner(
            osp.join(work_dir, 'resumed'),
            distributed=True,
            resume_from=osp.join(full_dir, f'iter_{CUT}.pth')))
    return dict(full=full, resumed=resumed)


@pytest.fixture(scope='module')
def two_ranks(tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('simt'))
    return work_dir, run_distributed(simt_worker, 2, work_dir, timeout=120)


def test_each_rank_follows_its_own_task_sampler(two_ranks):
    _, results = two_ranks
    for rank, res in enumerate(results):
        assert res['full']['wrapped'] == 'GradientFusionWrapper'
        assert res['full']['seen'] == expected_run(rank, 2)
    assert results[0]['full']['seen'] != results[1]['full']['seen']


def test_tasks_decode_only_what_they_consume(two_ranks):
    _, results = two_ranks
    never = 0
    for rank, res in enumerate(results):
        drawn = [t for t, _ in expected_run(rank, 2)]
        for t in WEIGHTS:
            assert res['full']['consumed'][t] == drawn.count(t)
            # num_workers=0: no prefetch, a task decodes what it consumes
            assert res['full']['calls'][t] == drawn.count(t) * BATCH[t]
            never += t not in drawn
    assert never >= 1  # some task was never drawn on some rank


def test_rank0_logs_every_task(two_ranks):
    _, results = two_ranks
    hub = results[0]['full']['hub']
    per_rank = [expected_run(r, 2) for r in range(2)]
    for t in WEIGHTS:
        total = sum(t == task for run in per_rank for task, _ in run)
        assert hub[f'train/{t}.iters'][-1] == total
        # one log entry per iteration in which some rank trained t: the
        # mean over the ranks that trained it
        expected = []
        for i in range(ITERS):
            vals = [
                results[r]['full']['losses'][i] for r in range(2)
                if per_rank[r][i][0] == t
            ]
            if vals:
                expected.append(sum(vals) / len(vals))
        assert hub.get(f'train/{t}.loss_reg', []) == pytest.approx(expected)
    both = [(results[0]['full']['losses'][i] +
             results[1]['full']['losses'][i]) / 2 for i in range(ITERS)]
    assert hub['train/loss'] == pytest.approx(both)


def test_resume_continues_exactly(two_ranks):
    work_dir, results = two_ranks
    for rank, res in enumerate(results):
        assert res['resumed']['seen'] == res['full']['seen'][CUT:]
        assert res['resumed']['consumed'] == res['full']['consumed']
        # the skipped batches were not decoded again
        decoded = {
            t: sum(BATCH[t] for task, _ in res['resumed']['seen'] if task == t)
            for t in WEIGHTS
        }
        assert res['resumed']['calls'] == decoded
        for key, value in res['full']['state'].items():
            torch.testing.assert_close(
                res['resumed']['state'][key], value, rtol=0, atol=0,
                msg=key)
    full = safe_torch_load(osp.join(work_dir, 'full', f'iter_{ITERS}.pth'))
    resumed = safe_torch_load(
        osp.join(work_dir, 'resumed', f'iter_{ITERS}.pth'))
    for key, value in full['state_dict'].items():
        torch.testing.assert_close(resumed['state_dict'][key], value,
                                   rtol=0, atol=0)


def test_checkpoint_state_is_per_rank_and_weights_only(two_ranks, tmp_path):
    work_dir, results = two_ranks
    ckpt = safe_torch_load(osp.join(work_dir, 'full', f'iter_{CUT}.pth'))
    states = ckpt['simt']
    assert len(states) == 2
    for rank, state in enumerate(states):
        drawn = [t for t, _ in expected_run(rank, 2, CUT)]
        assert state['consumed'] == {t: drawn.count(t) for t in WEIGHTS}
        assert state['iter'] == CUT
    path = str(tmp_path / 'simt.pth')
    torch.save(states, path)
    again = torch.load(path, weights_only=True)
    assert again[1]['consumed'] == states[1]['consumed']


# ------------------------------------------------------ single process
def test_single_process_finite_sampler_and_resume(tmp_path):
    """Not distributed, no collectives; a finite DefaultSampler task rolls
    over its epochs and resumes by replaying indices only."""
    samplers = dict(b=dict(type='DefaultSampler', shuffle=True))
    # validation (which draws random numbers here) must not shift the
    # training RNG: the full run validates right after saving at CUT, the
    # resumed run starts from that checkpoint
    val = dict(
        val_dataloader={
            t: dict(
                dataset=ToyDataset(t, 3),
                batch_size=2,
                sampler=dict(type='DefaultSampler', shuffle=False))
            for t in ('a', 'b')
        },
        val_evaluator={t: dict(type='ToyCountMetric')
                       for t in ('a', 'b')},
        val_cfg=dict(type='MultiTaskValLoop'))
    full = train(make_runner(str(tmp_path / 'full'), False, samplers=samplers,
                             iters=10, custom_hooks=[], val_interval=CUT,
                             **val))
    assert full['hub']['val/a/toy/count'] == [3] * 3  # 4, 8, 10
    assert [t for t, _ in full['seen']] == [
        s.sample() for s in [TaskSampler(WEIGHTS, 0)] for _ in range(10)
    ]
    b_batches = [idx for t, idx in full['seen'] if t == 'b']
    assert len(b_batches) >= 3  # two epochs of 5 samples in batches of 3
    resumed = train(
        make_runner(
            str(tmp_path / 'resumed'), False, samplers=samplers, iters=10,
            custom_hooks=[],  # the loop adds SIMTStateHook itself
            resume_from=str(tmp_path / 'full' / f'iter_{CUT}.pth'),
            val_interval=CUT, **val))
    assert resumed['seen'] == full['seen'][CUT:]
    for key, value in full['state'].items():
        torch.testing.assert_close(resumed['state'][key], value, rtol=0,
                                   atol=0)


def test_load_from_without_resume_ignores_state(tmp_path):
    train(make_runner(str(tmp_path / 'full'), False, iters=CUT))
    runner = make_runner(str(tmp_path / 'ft'), False, iters=2)
    runner._load_from = str(tmp_path / 'full' / f'iter_{CUT}.pth')
    res = train(runner)
    assert [t for t, _ in res['seen']] == [t for t, _ in expected_run(0, 1,
                                                                      2)]


# ------------------------------------------------------- configuration
def test_config_errors_name_the_task(tmp_path):
    runner = make_runner(str(tmp_path), False)
    good = {t: loader_cfg(t) for t in WEIGHTS}
    with pytest.raises(ValueError, match="task 'c' has a train dataloader"):
        SIMTTrainLoop(runner, good, 4, dict(a=1.0, b=1.0))
    with pytest.raises(ValueError, match="task 'd' has a sampling weight"):
        SIMTTrainLoop(runner, good, 4, dict(WEIGHTS, d=1.0))
    with pytest.raises(ValueError, match="task 'b'"):
        SIMTTrainLoop(runner, good, 4, dict(WEIGHTS, b=-1.0))
    with pytest.raises(ValueError, match='max_iters'):
        SIMTTrainLoop(runner, good, 0, WEIGHTS)
    with pytest.raises(ValueError, match='sampling'):
        SIMTTrainLoop(runner, good, 4, WEIGHTS, sampling='all')
    with pytest.raises(TypeError, match="task 'a'"):
        SIMTTrainLoop(runner, dict(good, a=[1, 2]), 4, WEIGHTS)
    with pytest.raises(ValueError, match='got one dataloader config'):
        SIMTTrainLoop(runner, good['a'], 4, WEIGHTS)


def test_world_size_change_is_refused_or_rescaled(tmp_path):
    runner = make_runner(str(tmp_path), False)
    loop = runner.train_loop
    states = [dict(consumed=dict(a=3, b=1, c=0)),
              dict(consumed=dict(a=1, b=2, c=1))]
    loop._iter = 2
    loop.load_simt_states(states)
    with pytest.raises(ValueError, match='2 ranks but this run has 1'):
        loop._restore()
    assert rescale_states(states, 0, 3)['consumed'] == dict(a=2, b=1, c=1)
    loop.load_simt_states(states, allow_world_size_change=True)
    loop._restore()
    assert loop.consumed == dict(a=4, b=3, c=1)
    assert loop.total_consumed == dict(a=4, b=3, c=1)


# ------------------------------------------------------------ pieces
def test_endless_batch_sampler_replays_epochs():
    data = ToyDataset('x', 5)
    sampler = DefaultSampler(data, shuffle=True, seed=1)
    batches = EndlessBatchSampler(BatchSampler(sampler, 2, False), 'x')
    reference = list(itertools.islice(iter(batches), 9))
    assert len({tuple(sorted(sum(reference[i:i + 3], [])))
                for i in (0, 3, 6)}) == 1  # three epochs of 3 batches
    assert reference[:3] != reference[3:6]  # reshuffled per epoch
    again = EndlessBatchSampler(
        BatchSampler(DefaultSampler(data, shuffle=True, seed=1), 2, False),
        'x')
    again.skip(4)
    assert list(itertools.islice(iter(again), 5)) == reference[4:]
    assert data.calls == 0


def test_plain_infinite_loader_skips_in_place():
    from gppf_mm.datasets import ResumableInfiniteSampler
    data = ToyDataset('x', 7)
    loader = DataLoader(
        data, batch_size=2, sampler=ResumableInfiniteSampler(data, seed=0),
        collate_fn=lambda b: dict(data_samples=[s['data_samples']
                                                for s in b]))
    assert prepare_task_loader(loader, 'x') is loader
    skip_batches(loader, 5)
    assert loader.sampler.position == 10 and data.calls == 0
    stream = rank_index_stream(7, 0, True, 0, 1)
    expected = list(itertools.islice(stream, 14))[10:]
    got = next(iter(loader))['data_samples'] + next(iter(loader))[
        'data_samples']
    assert got == expected


def test_rng_state_round_trip_is_weights_only(tmp_path):
    import random

    import numpy as np
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.randn()  # leaves a cached gaussian
    state = rng_state()
    expected = (torch.rand(2), np.random.randn(2), random.random())
    path = str(tmp_path / 'rng.pth')
    torch.save(state, path)
    set_rng_state(torch.load(path, weights_only=True))
    got = (torch.rand(2), np.random.randn(2), random.random())
    torch.testing.assert_close(got[0], expected[0])
    assert np.array_equal(got[1], expected[1]) and got[2] == expected[2]


class FakeCuda:
    """``torch.cuda``'s generator API for a process that sees ``count``
    GPUs and computes on ``current`` (this machine has no GPU); like torch,
    ``set_rng_state_all`` raises for a device index the process lacks."""

    def __init__(self, count, current):
        self.count, self.current = count, current
        self.states = {i: torch.tensor([i], dtype=torch.uint8)
                       for i in range(count)}

    def install(self, monkeypatch):
        for name in ('is_available', 'is_initialized'):
            monkeypatch.setattr(torch.cuda, name, lambda: True)
        monkeypatch.setattr(torch.cuda, 'current_device',
                            lambda: self.current)
        monkeypatch.setattr(torch.cuda, 'get_rng_state',
                            lambda device='cuda': self.states[
                                self._index(device)].clone())
        monkeypatch.setattr(torch.cuda, 'set_rng_state', self.set_rng_state)
        monkeypatch.setattr(
            torch.cuda, 'get_rng_state_all',
            lambda: [self.states[i].clone() for i in range(self.count)])
        monkeypatch.setattr(
            torch.cuda, 'set_rng_state_all',
            lambda states: [self.set_rng_state(s, i)
                            for i, s in enumerate(states)])

    def _index(self, device):
        index = self.current if device == 'cuda' else int(device)
        if index >= self.count:
            raise IndexError(f'invalid device ordinal {index}')
        return index

    def set_rng_state(self, state, device='cuda'):
        self.states[self._index(device)] = state.clone()


def test_cuda_rng_state_resumes_under_another_layout(monkeypatch):
    """A rank that saw 4 GPUs and computed on GPU 2 resumes in a process
    that sees only its own GPU (index 0): its generator state follows."""
    saving = FakeCuda(count=4, current=2)
    saving.states[2] = torch.tensor([42], dtype=torch.uint8)
    saving.install(monkeypatch)
    state = rng_state()
    resuming = FakeCuda(count=1, current=0)
    resuming.install(monkeypatch)
    set_rng_state(state)
    assert resuming.states[0].tolist() == [42]
    # a checkpoint of the old format (every visible device's state) picks
    # the entry of the current device, or the first one
    set_rng_state(dict(state, cuda=[torch.tensor([7], dtype=torch.uint8)] *
                       4))
    assert resuming.states[0].tolist() == [7]


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_rng_state_round_trip():
    torch.cuda.init()
    torch.cuda.manual_seed(5)
    state = rng_state()
    expected = torch.rand(3, device='cuda')
    set_rng_state(state)
    torch.testing.assert_close(torch.rand(3, device='cuda'), expected)


def test_auto_scale_lr_uses_the_simt_batch_size(tmp_path):
    """Weights 1 / 1 / 0.1 and batch sizes 2 / 3 / 2: 5.2 / 2.1 images
    per rank and iteration; a base of four ranks' worth on one rank scales
    the lr 0.1 by 1 / 4."""
    runner = make_runner(str(tmp_path), False, iters=1,
                         auto_scale_lr=dict(enable=True,
                                            base_batch_size=4 * 5.2 / 2.1))
    runner.train()
    assert runner.simt_batch_size() == pytest.approx(5.2 / 2.1)
    assert runner.optim_wrapper.get_lr()['lr'][0] == pytest.approx(0.1 / 4)


def test_state_hook_is_registered():
    assert SIMTStateHook().allow_world_size_change is False
