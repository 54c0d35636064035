# Copyright (c) gppf_mm contributors. All rights reserved.
"""Task sampling (SIMT and per-batch) and the resumable infinite sampler."""
import itertools
from collections import Counter

import pytest
import torch
from mmengine.dataset import InfiniteSampler

from gppf_mm.datasets import (
    ResumableInfiniteSampler,
    TaskSampler,
    normalise_task_weights,
    rank_index_stream,
    rank_stream_start,
    sampler_seed,
)
from gppf_mm.registry import DATA_SAMPLERS

WEIGHTS = dict(coco=2.5, ade=1.0, in21k=4.0, kitti=0.5)


# ---------------------------------------------------------------- weights
@pytest.mark.parametrize('weights, match', [
    (dict(), 'non-empty'),
    (dict(a=1.0, b=-0.5), "task 'b'"),
    (dict(a=1.0, b='x'), "task 'b'"),
    (dict(a=1.0, b=float('nan')), "task 'b'"),
    (dict(a=1.0, b=float('inf')), "task 'b'"),
    (dict(a=True), "task 'a'"),
    (dict(a=0, b=0.0), 'positive'),
])
def test_bad_weights_name_the_task(weights, match):
    with pytest.raises(ValueError, match=match):
        TaskSampler(weights)


def test_normalise_task_weights():
    probs = normalise_task_weights(dict(a=1, b=3, c=0))
    assert probs == dict(a=0.25, b=0.75, c=0.0)
    assert list(probs) == ['a', 'b', 'c']


def test_bad_rank_or_mode():
    with pytest.raises(ValueError, match='rank'):
        TaskSampler(WEIGHTS, rank=2, world_size=2)
    with pytest.raises(ValueError, match='sampling must be one of'):
        TaskSampler(WEIGHTS, mode='round_robin')
    with pytest.raises(ValueError, match='seed'):
        TaskSampler(WEIGHTS, seed=1.5)


# ------------------------------------------------------------- draws
def test_frequencies_match_weights():
    sampler = TaskSampler(WEIGHTS, seed=0)
    counts = Counter(sampler.sample() for _ in range(20000))
    total = sum(WEIGHTS.values())
    for task, w in WEIGHTS.items():
        assert abs(counts[task] / 20000 - w / total) < 0.02, task


def test_zero_weight_is_never_drawn():
    sampler = TaskSampler(dict(a=1.0, b=0.0), seed=3)
    assert {sampler.sample() for _ in range(500)} == {'a'}


def test_seeded_draws_are_reproducible_and_leave_global_rng_alone():
    torch.manual_seed(123)
    expected_global = torch.rand(3)
    torch.manual_seed(123)
    s1, s2 = TaskSampler(WEIGHTS, seed=7), TaskSampler(WEIGHTS, seed=7)
    draws1 = [s1.sample() for _ in range(200)]
    draws2 = [s2.sample() for _ in range(200)]
    assert draws1 == draws2
    torch.testing.assert_close(torch.rand(3), expected_global)
    other = TaskSampler(WEIGHTS, seed=8)
    assert [other.sample() for _ in range(200)] != draws1


def test_sampler_seed_arithmetic():
    assert [sampler_seed(10, r, 'simt') for r in range(4)] == [10, 11, 12, 13]
    assert [sampler_seed(10, r, 'per_batch') for r in range(4)] == [10] * 4


def draws(mode, rank, n=100, world_size=4):
    s = TaskSampler(WEIGHTS, seed=0, mode=mode, rank=rank,
                    world_size=world_size)
    return [s.sample() for _ in range(n)]


def test_simt_ranks_differ_per_batch_ranks_agree():
    simt = [draws('simt', r) for r in range(4)]
    assert len({tuple(d) for d in simt}) == 4
    per_batch = [draws('per_batch', r) for r in range(4)]
    assert all(d == per_batch[0] for d in per_batch)
    # SIMT rank r draws what a single process seeded 0 + r would
    assert simt[2] == [
        s.sample() for s in [TaskSampler(WEIGHTS, seed=2)] for _ in range(100)
    ]


def test_task_sampler_state_round_trip():
    s = TaskSampler(WEIGHTS, seed=5, rank=1, world_size=2)
    [s.sample() for _ in range(17)]
    state = s.state_dict()
    expected = [s.sample() for _ in range(50)]
    fresh = TaskSampler(WEIGHTS, seed=99, rank=1, world_size=2)
    fresh.load_state_dict(state)
    assert [fresh.sample() for _ in range(50)] == expected
    with pytest.raises(ValueError, match='tasks'):
        TaskSampler(dict(a=1.0)).load_state_dict(state)
    with pytest.raises(ValueError, match='mode'):
        TaskSampler(WEIGHTS, mode='per_batch').load_state_dict(state)


# --------------------------------------------- resumable infinite sampler
def test_rank_stream_arithmetic():
    assert rank_stream_start(1, 4, 0) == 1
    assert rank_stream_start(1, 4, 3) == 13
    with pytest.raises(ValueError, match='rank'):
        rank_stream_start(4, 4, 0)
    # no shuffling: the global stream is 0..size-1 repeated
    stream = rank_index_stream(5, 0, False, start=1, step=2)
    assert list(itertools.islice(stream, 7)) == [1, 3, 0, 2, 4, 1, 3]


@pytest.mark.parametrize('shuffle', [True, False])
@pytest.mark.parametrize('rank, world_size', [(0, 1), (0, 3), (2, 3)])
def test_same_order_as_mmengine_infinite_sampler(monkeypatch, shuffle, rank,
                                                 world_size):
    for module in ('gppf_mm.datasets.task_sampler',
                   'mmengine.dataset.sampler'):
        monkeypatch.setattr(f'{module}.get_dist_info',
                            lambda: (rank, world_size))
    data = list(range(7))
    ours = ResumableInfiniteSampler(data, shuffle=shuffle, seed=3)
    theirs = InfiniteSampler(data, shuffle=shuffle, seed=3)
    assert list(itertools.islice(iter(ours), 40)) == list(
        itertools.islice(iter(theirs), 40))
    assert ours.position == 40


@pytest.mark.parametrize('rank, world_size', [(0, 1), (1, 2), (2, 3)])
def test_set_position_continues_exactly(monkeypatch, rank, world_size):
    monkeypatch.setattr('gppf_mm.datasets.task_sampler.get_dist_info',
                        lambda: (rank, world_size))
    data = list(range(11))
    reference = list(
        itertools.islice(iter(ResumableInfiniteSampler(data, seed=1)), 100))
    for cut in (0, 1, 10, 11, 37, 99):
        s = ResumableInfiniteSampler(data, seed=1)
        s.set_position(cut)
        assert list(itertools.islice(iter(s), 100 - cut)) == reference[cut:]


def test_state_dict_round_trip_and_iteration_keeps_one_stream():
    data = list(range(9))
    s = ResumableInfiniteSampler(data, seed=4)
    first = list(itertools.islice(iter(s), 5))
    second = list(itertools.islice(iter(s), 5))  # continues, like mmengine
    state = s.state_dict()
    assert state['position'] == 10
    rest = list(itertools.islice(iter(s), 30))
    t = ResumableInfiniteSampler(data, seed=4)
    t.load_state_dict(state)
    assert list(itertools.islice(iter(t), 30)) == rest
    reference = ResumableInfiniteSampler(data, seed=4)
    assert list(itertools.islice(iter(reference), 40)) == \
        first + second + rest
    with pytest.raises(ValueError, match='seed'):
        ResumableInfiniteSampler(data, seed=5).load_state_dict(state)
    with pytest.raises(ValueError, match='size'):
        ResumableInfiniteSampler(list(range(8)), seed=4).load_state_dict(
            state)


def test_set_position_decodes_nothing_and_is_fast():

    class Counting:

        def __init__(self):
            self.calls = 0

        def __len__(self):
            return 1000

        def __getitem__(self, i):
            self.calls += 1
            return i

    data = Counting()
    s = ResumableInfiniteSampler(data, seed=0)
    s.set_position(2_000_000)  # 2000 epochs: only the permutations
    index = next(iter(s))
    assert data.calls == 0
    reference = rank_index_stream(1000, 0, True, start=2_000_000, step=1)
    assert index == next(reference)


def test_registered_and_empty_dataset_rejected():
    sampler = DATA_SAMPLERS.build(
        dict(type='ResumableInfiniteSampler', shuffle=False, seed=0),
        default_args=dict(dataset=list(range(3))))
    assert list(itertools.islice(iter(sampler), 4)) == [0, 1, 2, 0]
    with pytest.raises(ValueError, match='empty'):
        ResumableInfiniteSampler([], seed=0)
