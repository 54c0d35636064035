# Copyright (c) gppf_mm contributors. All rights reserved.
"""Per-task running statistics of cross-task BN: the rank that ran task t
updates t's statistics (and only t's) with the statistics it was normalised
with, reduced so that every replica holds the same buffers."""
import pytest
import torch
import torch.nn as nn
from mmdet.models.backbones import ResNet as MMDetResNet

from gppf_mm.models.backbones import LegoResNet
from gppf_mm.models.layers import (
    CrossTaskBatchNorm2d,
    convert_cross_task_bn,
    select_task_statistics,
)
from gppf_mm.models.routing import LegoLayer, Routing
from gppf_mm.testing import run_distributed

C = 3
TASKS = ['a', 'b', 'c']
# per step: (task, input shape) of rank 0 and rank 1
STEPS = [
    [('a', (2, C, 4, 4)), ('b', (3, C, 5, 3))],
    [('a', (1, C, 6, 6)), ('a', (2, C, 2, 2))],
]


def rank_input(step, rank, shape):
    g = torch.Generator().manual_seed(10 * step + rank)
    return torch.randn(shape, generator=g) * (rank + 1) + 2 * rank - step


def pixels(x):
    return x.permute(1, 0, 2, 3).reshape(x.shape[1], -1)


def hand_statistics():
    """Shared and per-task running statistics computed by hand."""
    mean, var = torch.zeros(C), torch.ones(C)
    rows = {t: (torch.zeros(C), torch.ones(C), 0) for t in TASKS}
    for step, ranks in enumerate(STEPS):
        flat = torch.cat([
            pixels(rank_input(step, r, shape))
            for r, (_, shape) in enumerate(ranks)
        ], 1)
        m = flat.mean(1)
        v = flat.var(1, unbiased=True)
        mean, var = 0.9 * mean + 0.1 * m, 0.9 * var + 0.1 * v
        for task in {t for t, _ in ranks}:
            tm, tv, n = rows[task]
            rows[task] = (0.9 * tm + 0.1 * m, 0.9 * tv + 0.1 * v, n + 1)
    return mean, var, rows


def hard_hand_statistics():
    """Hard routing: rank r computes unit r for task TASKS[r]; unit r's
    statistics for that task are rank r's own."""
    out = []
    for r in range(2):
        x = rank_input(0, r, STEPS[0][r][1])
        flat = pixels(x)
        out.append((0.1 * flat.mean(1), 0.9 + 0.1 * flat.var(1)))
    return out


def worker(rank, world_size):
    torch.manual_seed(0)
    bn = CrossTaskBatchNorm2d(C)
    bn.set_tasks(TASKS)
    outs = []
    for step, ranks in enumerate(STEPS):
        task, shape = ranks[rank]
        bn.set_active_task(task)
        outs.append(bn(rank_input(step, rank, shape)))
    state = {k: v.clone() for k, v in bn.state_dict().items()}

    layer = LegoLayer(lambda: CrossTaskBatchNorm2d(C), 2)
    for unit in layer.units:
        unit.set_tasks(TASKS)
        unit.set_active_task(TASKS[rank])
    layer.train()
    layer(rank_input(0, rank, STEPS[0][rank][1]),
          Routing([rank], torch.ones(2)))
    hard = [{k: v.clone() for k, v in u.state_dict().items()}
            for u in layer.units]
    return dict(state=state, hard=hard)


@pytest.fixture(scope='module')
def two_ranks():
    return run_distributed(worker, 2, timeout=120)


def test_task_rows_equal_hand_computation(two_ranks):
    mean, var, rows = hand_statistics()
    for res in two_ranks:
        state = res['state']
        torch.testing.assert_close(state['running_mean'], mean, atol=1e-5,
                                   rtol=0)
        torch.testing.assert_close(state['running_var'], var, atol=1e-5,
                                   rtol=0)
        for t, task in enumerate(TASKS):
            tm, tv, n = rows[task]
            assert int(state[f'task_count__{task}']) == n
            torch.testing.assert_close(state[f'task_mean__{task}'], tm,
                                       atol=1e-5, rtol=0)
            torch.testing.assert_close(state[f'task_var__{task}'], tv,
                                       atol=1e-5, rtol=0)
    # 'c' never ran: untouched; 'b' ran once, 'a' twice
    assert [int(two_ranks[0]['state'][f'task_count__{t}'])
            for t in TASKS] == [2, 1, 0]
    for key, value in two_ranks[0]['state'].items():
        assert torch.equal(value, two_ranks[1]['state'][key]), key


def test_hard_routing_updates_only_the_task_that_ran_the_unit(two_ranks):
    expected = hard_hand_statistics()
    for res in two_ranks:
        for unit, state in enumerate(res['hard']):
            # unit r ran task TASKS[r] on rank r only
            assert [int(state[f'task_count__{t}']) for t in TASKS] == [
                int(unit == t) for t in range(3)
            ]
            mean, var = expected[unit]
            task = TASKS[unit]
            torch.testing.assert_close(state[f'task_mean__{task}'], mean,
                                       atol=1e-5, rtol=0)
            torch.testing.assert_close(state[f'task_var__{task}'], var,
                                       atol=1e-5, rtol=0)


def test_eval_uses_the_active_tasks_statistics():
    bn = CrossTaskBatchNorm2d(C)
    bn.set_tasks(TASKS)
    x = torch.randn(4, C, 5, 5) * 3 + 1
    bn.set_active_task('b')
    bn.train()(x)  # one process: the batch's statistics
    assert [int(bn.task_statistics(t)[2]) for t in TASKS] == [0, 1, 0]
    mean_b, var_b, _ = bn.task_statistics('b')
    torch.testing.assert_close(mean_b, bn.running_mean)
    torch.testing.assert_close(var_b, bn.running_var)
    with torch.no_grad():
        bn.running_mean.fill_(5.0)  # shared statistics now differ
    bn.eval()
    y = torch.randn(2, C, 3, 3)
    expect_b = nn.functional.batch_norm(y, mean_b, var_b, bn.weight,
                                        bn.bias, False, 0., bn.eps)
    torch.testing.assert_close(bn(y), expect_b)
    bn.set_active_task('c')  # no statistics of its own: the shared ones
    shared = nn.functional.batch_norm(y, bn.running_mean, bn.running_var,
                                      bn.weight, bn.bias, False, 0., bn.eps)
    torch.testing.assert_close(bn(y), shared)
    bn.set_active_task('b')
    bn.use_task_stats = False
    torch.testing.assert_close(bn(y), shared)
    with pytest.raises(KeyError, match="unknown task 'd'"):
        bn.set_active_task('d')


def test_extracted_path_carries_the_tasks_statistics():
    torch.manual_seed(0)
    lego = LegoResNet(depth=18, base_channels=8, num_units=2,
                      tasks=['a', 'b'], norm_eval=False)
    lego = convert_cross_task_bn(lego)
    norms = [m for m in lego.modules() if isinstance(m, CrossTaskBatchNorm2d)]
    for m in norms:
        m.set_tasks(['a', 'b'])
    lego.train()
    for task, scale in (('a', 1.0), ('b', 4.0)):
        lego.set_task(task)
        for m in norms:
            m.set_active_task(task)
        lego(torch.randn(2, 3, 32, 32) * scale)
    state = lego.state_dict()
    assert 'stem_layer.units.0.bn1.task_mean__a' in state
    plain_a = lego.extract_path(task='a')
    plain_b = lego.extract_path(task='b')
    plain_shared = select_task_statistics(lego, state)
    # path of 'a' (argmax of zero logits: unit 0); the stem's first norm
    torch.testing.assert_close(plain_a['bn1.running_mean'],
                               state['stem_layer.units.0.bn1.task_mean__a'])
    torch.testing.assert_close(plain_b['bn1.running_var'],
                               state['stem_layer.units.0.bn1.task_var__b'])
    assert not torch.equal(plain_a['bn1.running_var'],
                           plain_b['bn1.running_var'])
    assert 'stem_layer.units.0.bn1.task_mean__a' not in plain_shared
    assert not any('__' in k for k in plain_a)
    ref = MMDetResNet(depth=18, base_channels=8)
    ref.load_state_dict(plain_a, strict=True)


def test_a_model_of_some_tasks_loads_their_statistics():
    """``tools/test.py --task b`` builds the model with task b alone; b's
    statistics must load from a checkpoint of every task."""
    full = CrossTaskBatchNorm2d(C)
    full.set_tasks(TASKS)
    for t in TASKS:
        full.set_active_task(t)
        full.train()(torch.randn(2, C, 3, 3) + TASKS.index(t))
    only = CrossTaskBatchNorm2d(C)
    only.set_tasks(['b'])
    result = only.load_state_dict(full.state_dict(), strict=False)
    assert sorted(result.unexpected_keys) == sorted(
        f'task_{k}__{t}' for k in ('mean', 'var', 'count')
        for t in ('a', 'c'))
    for ours, theirs in zip(only.task_statistics('b'),
                            full.task_statistics('b')):
        assert torch.equal(ours, theirs)
    with pytest.raises(ValueError, match="without '.'"):
        CrossTaskBatchNorm2d(C).set_tasks(['coco.det'])
