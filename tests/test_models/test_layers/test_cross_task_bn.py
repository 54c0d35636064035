# Copyright (c) gppf_mm contributors. All rights reserved.
"""Cross-task BN equals one-process BN over every rank's pixels.

All two-rank scenarios run in one spawn (module fixture) to keep the tests
fast; the test functions check its results.
"""
import pytest
import torch
import torch.distributed as dist
import torch.nn as nn

from gppf_mm.models.layers import CrossTaskBatchNorm2d, convert_cross_task_bn
from gppf_mm.models.routing import LegoLayer, Routing
from gppf_mm.testing import run_distributed

C = 3
STEPS = 2
# (per-rank input shapes, momentum)
CASES = [
    ([(3, C, 8, 8), (1, C, 5, 7)], 0.1),
    ([(2, C, 6, 6), (0, C, 9, 9)], 0.1),
    ([(0, C, 4, 4), (2, C, 3, 5)], None),
]
UNIT_SHAPES = [(2, C, 4, 4), (3, C, 5, 3)]


def rank_input(rank, shape):
    """A rank's input and the fixed random weights of its loss."""
    g = torch.Generator().manual_seed(100 + rank)
    x = torch.randn(shape, generator=g) * (rank + 1) + rank
    w = torch.randn(shape, generator=g)
    return x, w


def init_affine(bn):
    torch.manual_seed(0)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return bn


def to_pixels(x):
    """(B, C, H, W) -> (C, B * H * W)."""
    return x.permute(1, 0, 2, 3).reshape(x.shape[1], -1)


def from_pixels(flat, shape):
    b, c, h, w = shape
    return flat.reshape(c, b, h, w).permute(1, 0, 2, 3)


def reference(shapes, momentum):
    """nn.BatchNorm2d over all ranks' pixels concatenated."""
    bn = init_affine(nn.BatchNorm2d(C, momentum=momentum))
    xs, ws = zip(*[rank_input(r, s) for r, s in enumerate(shapes)])
    xs = [x.clone().requires_grad_(True) for x in xs]
    flat = torch.cat([to_pixels(x) for x in xs], 1)[None, :, None, :]
    wflat = torch.cat([to_pixels(w) for w in ws], 1)
    for _ in range(STEPS):
        out = bn(flat)[0, :, 0, :]
    (out * wflat).sum().backward()
    outs, offset = [], 0
    for s in shapes:
        n = s[0] * s[2] * s[3]
        outs.append(from_pixels(out[:, offset:offset + n], s).detach())
        offset += n
    return dict(
        out=outs, grad=[x.grad for x in xs], mean=bn.running_mean,
        var=bn.running_var, n=int(bn.num_batches_tracked),
        wgrad=bn.weight.grad, bgrad=bn.bias.grad)


# ------------------------------------------------------------ rank worker
def concat_case(rank, shapes, momentum):
    bn = init_affine(CrossTaskBatchNorm2d(C, momentum=momentum))
    x, w = rank_input(rank, shapes[rank])
    x.requires_grad_(True)
    for _ in range(STEPS):
        out = bn(x)
    (out * w).sum().backward()
    return dict(
        out=out.detach(), grad=x.grad, mean=bn.running_mean.clone(),
        var=bn.running_var.clone(), n=int(bn.num_batches_tracked),
        wgrad=bn.weight.grad.clone(), bgrad=bn.bias.grad.clone())


def make_lego():
    torch.manual_seed(0)
    return LegoLayer(
        lambda: nn.Sequential(
            nn.Conv2d(C, C, 1), init_affine(CrossTaskBatchNorm2d(C))),
        num_units=2)


def local_bn_of(unit, x):
    """Local-only BN (the statistics of one rank) after the same steps."""
    with torch.no_grad():
        y = unit[0](x)
    bn = nn.BatchNorm2d(C)
    bn.load_state_dict(unit[1].state_dict())
    y.requires_grad_(True)
    for _ in range(STEPS):
        out = bn(y)
    out.sum().backward()
    return dict(out=out.detach(), grad=y.grad, mean=bn.running_mean,
                var=bn.running_var)


def unit_stats(layer):
    return [(u[1].running_mean.clone(), u[1].running_var.clone(),
             int(u[1].num_batches_tracked)) for u in layer.units]


def hard_routing_case(rank):
    """Rank r computes unit r only: different modules, same collectives."""
    layer = make_lego()
    fresh = make_lego()
    x, _ = rank_input(rank, UNIT_SHAPES[rank])
    captured = {}
    bn = layer.units[rank][1]
    bn.register_forward_hook(lambda m, i, o: captured.update(y=i[0]))
    for _ in range(STEPS):
        out = layer(x, Routing([rank], None))
    captured['y'].retain_grad()
    out.sum().backward()
    return dict(
        stats=unit_stats(layer), out=out.detach(),
        grad=captured['y'].grad, local=local_bn_of(fresh.units[rank], x))


def soft_routing_case(rank):
    """Both ranks compute both units: each unit's statistics are pooled."""
    layer = make_lego()
    x, _ = rank_input(rank, UNIT_SHAPES[rank])
    weights = torch.tensor([0.25, 0.75])
    for _ in range(STEPS):
        out = layer(x, Routing([0, 1], weights))
    out.sum().backward()
    with torch.no_grad():
        ys = [to_pixels(u[0](x)) for u in make_lego().units]
    return dict(stats=unit_stats(layer), pixels=ys)


def own_group_case(rank, groups):
    """A one-rank group: exactly nn.BatchNorm2d, in train and eval."""
    ref = init_affine(nn.BatchNorm2d(C))
    ours = init_affine(CrossTaskBatchNorm2d(C, process_group=groups[rank]))
    x, _ = rank_input(rank, UNIT_SHAPES[rank])
    same = [torch.equal(ours(x), ref(x)) for _ in range(STEPS)]
    same.append(torch.equal(ours.running_var, ref.running_var))
    ours.eval()
    ref.eval()
    same.append(torch.equal(ours(x), ref(x)))
    return same


def eval_case(rank):
    """Eval mode under a 2-rank group: local, no collective."""
    ref = init_affine(nn.BatchNorm2d(C))
    ref.running_mean.fill_(0.5)
    ours = init_affine(CrossTaskBatchNorm2d(C))
    ours.load_state_dict(ref.state_dict())
    ours.eval()
    ref.eval()
    # only rank 0 calls it: a collective here would hang
    if rank == 0:
        x, _ = rank_input(rank, UNIT_SHAPES[rank])
        return torch.equal(ours(x), ref(x))
    return True


def low_precision_case(rank):
    bn = init_affine(CrossTaskBatchNorm2d(C))
    x, _ = rank_input(rank, UNIT_SHAPES[rank])
    xb = x.to(torch.bfloat16).requires_grad_(True)
    out = bn(xb)
    out.float().sum().backward()
    return dict(dtype=(out.dtype, xb.grad.dtype), out=out.float())


def worker(rank, world):
    groups = [dist.new_group([r]) for r in range(world)]
    res = dict(
        concat=[concat_case(rank, s, m) for s, m in CASES],
        hard=hard_routing_case(rank),
        soft=soft_routing_case(rank),
        own_group=own_group_case(rank, groups),
        eval=eval_case(rank),
        low_precision=low_precision_case(rank))
    dist.barrier()
    return res


@pytest.fixture(scope='module')
def two_ranks():
    return run_distributed(worker, 2, timeout=120)


# ----------------------------------------------------------------- tests
@pytest.mark.parametrize('case', range(len(CASES)))
def test_matches_bn_over_concatenated_inputs(two_ranks, case):
    shapes, momentum = CASES[case]
    ref = reference(shapes, momentum)
    results = [r['concat'][case] for r in two_ranks]
    for rank, res in enumerate(results):
        assert res['out'].shape == shapes[rank]
        torch.testing.assert_close(
            res['out'], ref['out'][rank], atol=1e-5, rtol=0)
        torch.testing.assert_close(
            res['grad'], ref['grad'][rank], atol=1e-5, rtol=0)
        torch.testing.assert_close(res['mean'], ref['mean'], atol=1e-5,
                                   rtol=0)
        torch.testing.assert_close(res['var'], ref['var'], atol=1e-5, rtol=0)
        assert res['n'] == ref['n'] == STEPS
    # each rank's affine gradients are its own pixels' share
    torch.testing.assert_close(
        sum(r['wgrad'] for r in results), ref['wgrad'], atol=1e-5, rtol=0)
    torch.testing.assert_close(
        sum(r['bgrad'] for r in results), ref['bgrad'], atol=1e-5, rtol=0)


def test_hard_routing_units_no_deadlock_and_replicas_agree(two_ranks):
    res = [r['hard'] for r in two_ranks]
    # both ranks hold identical running statistics for both units
    for j in range(2):
        for a, b in zip(res[0]['stats'][j], res[1]['stats'][j]):
            assert torch.equal(torch.as_tensor(a), torch.as_tensor(b))
    # unit j's statistics, output and input gradient are those of local BN
    # on the data of rank j, the only rank that computed unit j
    for j in range(2):
        local = res[j]['local']
        mean, var, n = res[1 - j]['stats'][j]
        torch.testing.assert_close(mean, local['mean'], atol=1e-5, rtol=0)
        torch.testing.assert_close(var, local['var'], atol=1e-5, rtol=0)
        assert n == STEPS
        torch.testing.assert_close(res[j]['out'], local['out'], atol=1e-5,
                                   rtol=0)
        torch.testing.assert_close(res[j]['grad'], local['grad'], atol=1e-5,
                                   rtol=0)


def test_soft_routing_pools_each_unit_over_ranks(two_ranks):
    res = [r['soft'] for r in two_ranks]
    for j in range(2):
        pixels = torch.cat([r['pixels'][j] for r in res], 1)
        ref = nn.BatchNorm2d(C)
        for _ in range(STEPS):
            ref(pixels[None, :, None, :])
        for r in res:
            mean, var, n = r['stats'][j]
            torch.testing.assert_close(mean, ref.running_mean, atol=1e-5,
                                       rtol=0)
            torch.testing.assert_close(var, ref.running_var, atol=1e-5,
                                       rtol=0)
            assert n == STEPS


def test_one_rank_group_and_eval_are_batchnorm(two_ranks):
    for r in two_ranks:
        assert all(r['own_group'])
        assert r['eval']


def test_low_precision_input(two_ranks):
    ref = init_affine(nn.BatchNorm2d(C))
    xs = [rank_input(r, s)[0] for r, s in enumerate(UNIT_SHAPES)]
    flat = torch.cat([to_pixels(x.to(torch.bfloat16).float()) for x in xs],
                     1)
    out = ref(flat[None, :, None, :])[0, :, 0, :]
    n0 = UNIT_SHAPES[0][0] * UNIT_SHAPES[0][2] * UNIT_SHAPES[0][3]
    for rank, r in enumerate(two_ranks):
        res = r['low_precision']
        assert res['dtype'] == (torch.bfloat16, torch.bfloat16)
        part = out[:, :n0] if rank == 0 else out[:, n0:]
        torch.testing.assert_close(
            res['out'], from_pixels(part, UNIT_SHAPES[rank]), atol=3e-2,
            rtol=1e-2)


# ------------------------------------------------------- single process
@pytest.mark.parametrize('momentum', [0.1, None])
def test_single_process_equals_batchnorm(momentum):
    assert not dist.is_initialized()
    torch.manual_seed(0)
    ref = nn.BatchNorm2d(C, momentum=momentum)
    ours = CrossTaskBatchNorm2d(C, momentum=momentum)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(4, C, 5, 5)
    xr = x.clone().requires_grad_(True)
    xo = x.clone().requires_grad_(True)
    for _ in range(3):
        yr, yo = ref(xr), ours(xo)
        assert torch.equal(yo, yr)
    yr.sum().backward()
    yo.sum().backward()
    assert torch.equal(xo.grad, xr.grad)
    for key, value in ref.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    ours.eval()
    ref.eval()
    assert torch.equal(ours(x), ref(x))
    with pytest.raises(ValueError, match='expected 3 channels, got 4'):
        ours(torch.randn(1, 4, 2, 2))
    with pytest.raises(ValueError, match='4D input'):
        ours(torch.randn(4, C))


def test_build_norm_layer_in_gppf_and_mmdet_scopes():
    from mmcv.cnn import build_norm_layer
    from mmengine.registry import DefaultScope
    for scope in ('gppf_mm', 'mmdet', 'mmpretrain', None):
        if scope is None:
            name, layer = build_norm_layer(
                dict(type='CrossTaskBN'), 8, postfix=1)
        else:
            with DefaultScope.overwrite_default_scope(scope):
                name, layer = build_norm_layer(
                    dict(type='CrossTaskBN', momentum=0.05), 8, postfix=2)
        assert name.startswith('bn') and name[2:] in ('1', '2')
        assert isinstance(layer, CrossTaskBatchNorm2d)


def test_mmdet_resnet_with_cross_task_bn_keeps_keys():
    from mmdet.models.backbones import ResNet
    from mmengine.registry import DefaultScope
    torch.manual_seed(0)
    plain = ResNet(depth=18, norm_cfg=dict(type='BN'))
    with DefaultScope.overwrite_default_scope('mmdet'):
        ours = ResNet(depth=18, norm_cfg=dict(type='CrossTaskBN'))
    assert list(ours.state_dict()) == list(plain.state_dict())
    assert isinstance(ours.bn1, CrossTaskBatchNorm2d)
    assert isinstance(ours.layer1[0].bn2, CrossTaskBatchNorm2d)


def test_convert_keeps_state_dict():
    from mmdet.models.backbones import ResNet
    torch.manual_seed(0)
    model = ResNet(depth=18, frozen_stages=1, norm_eval=False)
    model.bn1.running_mean.uniform_()
    model.bn1.num_batches_tracked.fill_(7)
    model.layer2[0].bn1.eval()
    modes = {k: m.training for k, m in model.named_modules()}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {k: p.requires_grad for k, p in model.named_parameters()}
    model = convert_cross_task_bn(model)
    assert isinstance(model.bn1, CrossTaskBatchNorm2d)
    assert isinstance(model.layer4[0].downsample[1], CrossTaskBatchNorm2d)
    assert not any(type(m) is nn.BatchNorm2d for m in model.modules())
    after = model.state_dict()
    assert list(after) == list(before)
    for k in before:
        assert torch.equal(after[k], before[k]), k
    assert {k: p.requires_grad
            for k, p in model.named_parameters()} == grads
    assert {k: m.training for k, m in model.named_modules()} == modes
    assert not model.layer1[0].bn2.training  # frozen stage
    assert not model.layer2[0].bn1.training and model.layer2[0].bn2.training


def test_convert_binds_lego_units():
    lego = LegoLayer(
        lambda: nn.Sequential(nn.BatchNorm2d(2), nn.ReLU(),
                              nn.BatchNorm2d(2), nn.BatchNorm1d(2)),
        num_units=3)
    root = convert_cross_task_bn(nn.Sequential(lego, nn.BatchNorm2d(2)))
    assert isinstance(root[1], CrossTaskBatchNorm2d)
    assert root[1].num_units == 1
    bn = lego.units[2][2]
    assert isinstance(bn, CrossTaskBatchNorm2d)
    assert bn.unit_index == 2 and bn.num_units == 3
    assert bn.siblings == [u[2] for u in lego.units]
    assert lego.units[0][0].siblings == [u[0] for u in lego.units]
    assert type(lego.units[0][3]) is nn.BatchNorm1d
    # a bare norm is converted and returned
    single = convert_cross_task_bn(nn.SyncBatchNorm(4))
    assert isinstance(single, CrossTaskBatchNorm2d)
    with pytest.raises(ValueError, match='siblings'):
        single.set_unit_slot(0, [CrossTaskBatchNorm2d(4), single])
