# Copyright (c) gppf_mm contributors. All rights reserved.
"""Cross-task BN equals one-process BN over every rank's pixels."""
import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from mmcv.cnn import build_norm_layer

from gppf_mm.models.layers import CrossTaskBatchNorm2d, convert_cross_task_bn
from gppf_mm.models.routing import LegoLayer, Routing
from gppf_mm.testing import run_distributed

C = 3


def rank_input(rank, shapes):
    g = torch.Generator().manual_seed(100 + rank)
    x = torch.randn(shapes[rank], generator=g) * (rank + 1) + rank
    w = torch.randn(shapes[rank], generator=g)  # loss weights
    return x, w


def reference(shapes, steps):
    """nn.BatchNorm2d over all ranks' pixels concatenated."""
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(C)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    xs, ws = zip(*[rank_input(r, shapes) for r in range(len(shapes))])
    xs = [x.clone().requires_grad_(True) for x in xs]
    flat = torch.cat([x.permute(1, 0, 2, 3).reshape(C, -1) for x in xs], 1)
    wflat = torch.cat([w.permute(1, 0, 2, 3).reshape(C, -1) for w in ws], 1)
    for _ in range(steps):
        out = bn(flat[None, :, None, :])
        loss = (out[0, :, 0, :] * wflat).sum()
    loss.backward()
    return bn, [x.grad for x in xs], out


def worker(rank, world, shapes, steps):
    torch.manual_seed(0)
    bn = CrossTaskBatchNorm2d(C)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    x, w = rank_input(rank, shapes)
    x.requires_grad_(True)
    for _ in range(steps):
        out = bn(x)
    (out * w).sum().backward()
    return dict(
        out=out.detach(), grad=x.grad, mean=bn.running_mean.clone(),
        var=bn.running_var.clone(), n=int(bn.num_batches_tracked),
        wgrad=bn.weight.grad.clone(), bgrad=bn.bias.grad.clone())


@pytest.mark.parametrize('shapes', [
    [(3, C, 8, 8), (1, C, 5, 7)],
    [(2, C, 6, 6), (0, C, 9, 9)],
])
def test_matches_bn_over_concatenated_inputs(shapes):
    results = run_distributed(worker, 2, shapes, 2, timeout=120)
    bn, grads, out = reference(shapes, 2)
    offset = 0
    for rank, res in enumerate(results):
        torch.testing.assert_close(res['mean'], bn.running_mean, atol=1e-5,
                                   rtol=0)
        torch.testing.assert_close(res['var'], bn.running_var, atol=1e-5,
                                   rtol=0)
        assert res['n'] == 2
        torch.testing.assert_close(res['grad'], grads[rank], atol=1e-5,
                                   rtol=1e-5)
        b, _, h, w = shapes[rank]
        ref_out = out[0, :, 0, offset:offset + b * h * w].reshape(
            C, b, h, w).permute(1, 0, 2, 3)
        offset += b * h * w
        torch.testing.assert_close(res['out'], ref_out, atol=1e-5, rtol=0)
    # each rank's affine gradients are its own pixels' share
    torch.testing.assert_close(
        sum(r['wgrad'] for r in results), bn.weight.grad, atol=1e-4,
        rtol=1e-5)
    torch.testing.assert_close(
        sum(r['bgrad'] for r in results), bn.bias.grad, atol=1e-4, rtol=1e-5)


def unit_worker(rank, world):
    torch.manual_seed(0)
    layer = LegoLayer(
        lambda: nn.Sequential(nn.Conv2d(C, C, 1), CrossTaskBatchNorm2d(C)),
        num_units=2)
    x, _ = rank_input(rank, [(2, C, 4, 4), (3, C, 5, 5)])
    local = None
    for step in range(3):
        # rank 0 computes unit 0 and rank 1 unit 1: different modules, the
        # same collective calls
        out = layer(x, Routing([rank], None))
        out.sum().backward()
        if step == 0:
            with torch.no_grad():
                y = layer.units[rank][0](x)
                local = (y.mean((0, 2, 3)), y.var((0, 2, 3), unbiased=True))
    stats = [(u[1].running_mean.clone(), u[1].running_var.clone(),
              int(u[1].num_batches_tracked)) for u in layer.units]
    return dict(stats=stats, local=local)


def test_hard_routing_units_no_deadlock_and_replicas_agree():
    res = run_distributed(unit_worker, 2, timeout=120)
    for j in range(2):
        for a, b in zip(res[0]['stats'][j], res[1]['stats'][j]):
            assert torch.equal(torch.as_tensor(a), torch.as_tensor(b))
        assert res[0]['stats'][j][2] == 3
    # unit r's statistics come from rank r alone; after one step with
    # momentum 0.1 running_mean = 0.1 * batch mean (checked on step 0 via
    # a fresh reference below)
    mean0, var0 = res[0]['local']
    torch.manual_seed(0)
    expected_mean = torch.zeros(C)
    expected_var = torch.ones(C)
    for _ in range(3):
        expected_mean = 0.9 * expected_mean + 0.1 * mean0
        expected_var = 0.9 * expected_var + 0.1 * var0
    # weights do not change (no optimizer), so the batch stats repeat
    torch.testing.assert_close(res[0]['stats'][0][0], expected_mean,
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(res[0]['stats'][0][1], expected_var,
                               atol=1e-5, rtol=0)


def test_single_process_and_eval_equal_batchnorm():
    assert not dist.is_initialized()
    torch.manual_seed(0)
    ref = nn.BatchNorm2d(C, momentum=None)
    ours = CrossTaskBatchNorm2d(C, momentum=None)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(4, C, 5, 5)
    for _ in range(2):
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=0)
    torch.testing.assert_close(ours.running_var, ref.running_var)
    ours.eval()
    ref.eval()
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match='expected 3 channels, got 4'):
        ours(torch.randn(1, 4, 2, 2))


def test_build_and_convert():
    name, layer = build_norm_layer(dict(type='CrossTaskBN'), 8, postfix=1)
    assert name == 'bn1' and isinstance(layer, CrossTaskBatchNorm2d)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    model[1].running_mean.fill_(0.3)
    model[1].weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model = convert_cross_task_bn(model)
    assert isinstance(model[1], CrossTaskBatchNorm2d)
    assert not model[1].weight.requires_grad
    after = model.state_dict()
    assert list(after) == list(before)
    for k in before:
        assert torch.equal(after[k], before[k])
    lego = convert_cross_task_bn(
        LegoLayer(lambda: nn.Sequential(nn.BatchNorm2d(2), nn.BatchNorm2d(2)),
                  num_units=3))
    bn = lego.units[2][1]
    assert bn.unit_index == 2 and bn.num_units == 3
    assert bn._siblings[0] is lego.units[0][1]
