# Copyright (c) gppf_mm contributors. All rights reserved.
"""Virtual devices in one process: cross-task BN of several devices' inputs
equals one BatchNorm over all their pixels, the lockstep backbone runs every
device along its own path, and a device that fails or falls out of step
stops the step with an error naming it."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from gppf_mm.models.backbones import LegoResNet
from gppf_mm.models.layers import CrossTaskBatchNorm2d, convert_cross_task_bn
from gppf_mm.models.layers.cross_task_bn import cross_task_bn
from gppf_mm.models.layers.lockstep import DeviceError, Lockstep


def test_devices_are_normalised_as_one_batch_of_all_their_pixels():
    torch.manual_seed(0)
    bn = CrossTaskBatchNorm2d(3).train()
    bn.set_tasks(['a', 'b'])
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    # three devices: other batch sizes, other image sizes, an empty batch
    xs = [torch.randn(2, 3, 4, 5, dtype=torch.float64) * 3 + 1,
          torch.randn(1, 3, 6, 2, dtype=torch.float64),
          torch.randn(0, 3, 4, 4, dtype=torch.float64)]
    xs = [x.requires_grad_() for x in xs]
    bn.double()
    outs = cross_task_bn([bn, bn, bn], xs, ['a', 'b', 'a'], False)
    dys = [torch.randn_like(o) for o in outs]
    torch.autograd.backward(outs, dys)

    # reference: batch norm of the pixels of all devices side by side
    ref_w = bn.weight.detach().clone().requires_grad_()
    ref_b = bn.bias.detach().clone().requires_grad_()
    ref_x = [x.detach().clone().requires_grad_() for x in xs]
    flat = torch.cat([x.permute(1, 0, 2, 3).reshape(3, -1) for x in ref_x],
                     dim=1).t()
    y = F.batch_norm(flat, None, None, ref_w, ref_b, True, 0.0, bn.eps)
    pieces, start = [], 0
    for x in ref_x:
        n = x.numel() // 3
        pieces.append(y[start:start + n].t().reshape(
            3, x.shape[0], x.shape[2], x.shape[3]).permute(1, 0, 2, 3))
        start += n
    torch.autograd.backward(pieces, dys)
    for out, ref in zip(outs, pieces):
        torch.testing.assert_close(out, ref)
    for x, r in zip(xs, ref_x):
        torch.testing.assert_close(x.grad, r.grad)
    torch.testing.assert_close(bn.weight.grad, ref_w.grad)
    torch.testing.assert_close(bn.bias.grad, ref_b.grad)
    # running statistics: one update with the pooled statistics; task 'a'
    # tracked once (two of its devices in this call), task 'b' once
    pixels = flat.detach()
    mean = pixels.mean(0)
    unbiased = pixels.var(0, unbiased=True)
    torch.testing.assert_close(bn.running_mean, 0.1 * mean)
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * unbiased)
    assert int(bn.task_statistics('a')[2]) == 1
    assert int(bn.task_statistics('b')[2]) == 1


def _devices_backbone(routing):
    torch.manual_seed(0)
    backbone = LegoResNet(depth=18, base_channels=4, num_units=2,
                          tasks=['a', 'b'], routing_mode=routing,
                          norm_eval=False)
    # float64: the plain forward and the pooled one agree to rounding
    return convert_cross_task_bn(backbone).double().train()


@pytest.mark.parametrize('routing', ['hard', 'soft'])
def test_lockstep_devices_with_the_same_batch_equal_one_plain_run(routing):
    """Two devices with the same task, batch and noise are normalised with
    the statistics of that batch (pooled with its copy): each gets the
    features of one plain training forward, and the weights twice its
    gradient."""
    backbone = _devices_backbone(routing)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    backbone.controller.manual_seed(7)
    backbone.set_task('a')
    expected = backbone(x)
    sum(o.sum() for o in expected).backward()
    grads = {n: p.grad.clone() for n, p in backbone.named_parameters()
             if p.grad is not None}
    backbone.zero_grad()

    generators = [torch.Generator().manual_seed(7) for _ in range(2)]

    def enter(d):
        def fn():
            backbone.controller._generator = generators[d]
        return fn

    def combine(mods, xs, ids):
        return cross_task_bn(mods, xs, ['a', 'a'], False)

    def run():
        backbone.set_task('a')
        return backbone(x)

    lockstep = Lockstep(['a', 'a'], combine, [enter(0), enter(1)])
    feats = lockstep.run([run, run])
    for out in feats:
        for a, b in zip(out, expected):
            torch.testing.assert_close(a, b)
    sum(o.sum() for out in feats for o in out).backward()
    for name, p in backbone.named_parameters():
        if name in grads:
            torch.testing.assert_close(p.grad, 2 * grads[name], msg=name)


class _Norms(nn.Module):
    def __init__(self, calls):
        super().__init__()
        self.calls = calls
        self.bn = CrossTaskBatchNorm2d(2).train()

    def forward(self, x):
        for _ in range(self.calls):
            x = self.bn(x)
        return x


def _combine(mods, xs, ids):
    return cross_task_bn(mods, xs, [None] * len(xs), False)


def test_a_device_out_of_step_is_named():
    x = torch.randn(2, 2, 3, 3)
    once, twice = _Norms(1), _Norms(2)
    twice.bn = once.bn
    lockstep = Lockstep(['a', 'b'], _combine)
    with pytest.raises(DeviceError, match=r"device 1 \(task 'b'\).*"
                       'different numbers of norm calls'):
        lockstep.run([lambda: once(x), lambda: twice(x)])
    # different layers at one call
    other = _Norms(1)
    with pytest.raises(DeviceError, match='different cross-task norms'):
        Lockstep(['a', 'b'], _combine).run([lambda: once(x),
                                            lambda: other(x)])


def test_a_failing_device_is_named_and_the_others_stop():
    x = torch.randn(2, 2, 3, 3)
    norms = _Norms(3)

    def bad():
        norms(x)
        raise ValueError('a bad batch')

    lockstep = Lockstep(['a', 'b', 'c'], _combine,
                        name=lambda d: f'process 0, device {d}')
    with pytest.raises(DeviceError, match='process 0, device 2 failed.*'
                       'ValueError: a bad batch'):
        lockstep.run([lambda: norms(x), lambda: norms(x), bad])
