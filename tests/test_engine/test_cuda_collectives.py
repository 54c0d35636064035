# Copyright (c) gppf_mm contributors. All rights reserved.
"""Cross-task BN and gradient fusion on CUDA tensors.

Skipped without CUDA. Both ranks share one GPU over gloo (whose
collectives take CUDA tensors); with two or more GPUs the same checks also
run on NCCL, one GPU per rank. Every expected value is computed on the CPU
in float64.
"""
import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper

from gppf_mm.engine.model_wrappers import GradientFusionWrapper
from gppf_mm.models.layers import CrossTaskBatchNorm2d
from gppf_mm.models.routing import LegoLayer, Routing
from gppf_mm.testing import run_distributed

CUDA = torch.cuda.is_available()
pytestmark = pytest.mark.skipif(not CUDA, reason='needs CUDA')
BACKENDS = ['gloo'] + (['nccl'] if CUDA and torch.cuda.device_count() >= 2
                       else [])
C = 4
# per-rank input shapes: unequal batches and image sizes, one empty
SHAPES = [(3, C, 8, 8), (0, C, 5, 7)], [(2, C, 6, 6), (5, C, 3, 9)]
STEPS = 2


def device_of(rank):
    return torch.device('cuda', rank % torch.cuda.device_count())


def rank_input(rank, shape):
    g = torch.Generator().manual_seed(100 + rank)
    return (torch.randn(shape, generator=g) * (rank + 1) + rank,
            torch.randn(shape, generator=g))


def affine(bn):
    torch.manual_seed(0)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return bn


def pixels(x):
    return x.permute(1, 0, 2, 3).reshape(x.shape[1], -1)


def reference_bn(shapes):
    """nn.BatchNorm2d in float64 on the CPU over all ranks' pixels."""
    bn = affine(nn.BatchNorm2d(C)).double()
    xs, ws = zip(*[rank_input(r, s) for r, s in enumerate(shapes)])
    xs = [x.double().requires_grad_() for x in xs]
    flat = torch.cat([pixels(x) for x in xs], 1)[None, :, None, :]
    for _ in range(STEPS):
        out = bn(flat)[0, :, 0, :]
    (out * torch.cat([pixels(w) for w in ws], 1).double()).sum().backward()
    return [x.grad for x in xs], bn.running_mean, bn.running_var


class Tasks(BaseModel):
    """A cross-task BN trunk shared by two tasks and a head per task."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, C, 3, padding=1)
        self.bn = CrossTaskBatchNorm2d(C)
        self.head_a = nn.Conv2d(C, 2, 1)
        self.head_b = nn.Conv2d(C, 3, 1)

    def forward(self, inputs, data_samples=None, mode='tensor', task=None):
        y = self.bn(self.stem(inputs)).relu()
        head = self.head_a if task == 'a' else self.head_b
        return dict(loss=head(y).square().mean())


def task_data(rank, device):
    g = torch.Generator().manual_seed(rank)
    size = (8, 8) if rank == 0 else (12, 10)
    return dict(inputs=torch.randn(2 + rank, 3, *size, generator=g).to(
        device), task='a' if rank == 0 else 'b')


# ------------------------------------------------------------ rank worker
def bn_case(rank, device, shapes):
    bn = affine(CrossTaskBatchNorm2d(C)).to(device)
    x, w = rank_input(rank, shapes[rank])
    x = x.to(device).requires_grad_()
    for _ in range(STEPS):
        out = bn(x)
    (out * w.to(device)).sum().backward()
    return x.grad.cpu(), bn.running_mean.cpu(), bn.running_var.cpu()


def autocast_case(rank, device):
    """float16 / bfloat16 activations are normalised in float32."""
    out = {}
    x, _ = rank_input(rank, SHAPES[1][rank])
    for dtype in (torch.float16, torch.bfloat16):
        bn = affine(CrossTaskBatchNorm2d(C)).to(device)
        y = bn(x.to(device, dtype))
        assert y.dtype == dtype
        out[str(dtype)] = y.float().cpu()
    bn = affine(CrossTaskBatchNorm2d(C)).to(device)
    out['float32'] = bn(x.to(device)).cpu()
    return out


def hard_routing_case(rank, device):
    """Rank r computes unit r of a lego layer for 20 steps."""
    torch.manual_seed(0)
    layer = LegoLayer(
        lambda: nn.Sequential(nn.Conv2d(C, C, 1), CrossTaskBatchNorm2d(C)),
        num_units=2).to(device)
    g = torch.Generator().manual_seed(rank)
    for step in range(20):
        x = torch.randn(1 + (step + rank) % 3, C, 4 + rank, 5, generator=g)
        layer(x.to(device), Routing([rank], None)).sum().backward()
    return [(u[1].running_mean.cpu(), u[1].running_var.cpu(),
             int(u[1].num_batches_tracked)) for u in layer.units]


def fusion_case(rank, device):
    """Fused gradients with and without overlap, and the local gradients
    each rank would have with the same BN statistics."""
    out = {}
    for overlap in (True, False, None):
        model = Tasks().to(device)
        wrapper = GradientFusionWrapper(model, bucket_size_mb=1e-6,
                                        overlap=overlap)
        optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
        grads = {}
        step = optim.step

        def capture(grads=grads, step=step, model=model, **kwargs):
            grads.update({n: None if p.grad is None else p.grad.cpu()
                          for n, p in model.named_parameters()})
            step(**kwargs)

        optim.step = capture
        wrapper.train_step(task_data(rank, device), optim)
        out[overlap] = (grads, dict(wrapper.fusion_stats), wrapper.overlap)
    # local gradients, summed with the other rank's: the task averages
    model = Tasks().to(device)
    model(**task_data(rank, device), mode='loss')['loss'].backward()
    out['local'] = {n: None if p.grad is None else p.grad.cpu()
                    for n, p in model.named_parameters()}
    return out


def worker(rank, world):
    device = device_of(rank)
    torch.cuda.set_device(device)
    res = dict(
        bn=[bn_case(rank, device, s) for s in SHAPES],
        autocast=autocast_case(rank, device),
        hard=hard_routing_case(rank, device),
        fusion=fusion_case(rank, device),
        backend=dist.get_backend())
    dist.barrier()
    return res


@pytest.fixture(scope='module', params=BACKENDS)
def two_ranks(request):
    return run_distributed(worker, 2, timeout=300, backend=request.param)


# ----------------------------------------------------------------- tests
def test_cross_task_bn_on_cuda_matches_bn_over_concatenated_inputs(
        two_ranks):
    for case, shapes in enumerate(SHAPES):
        grads, mean, var = reference_bn(shapes)
        for rank, r in enumerate(two_ranks):
            grad, r_mean, r_var = r['bn'][case]
            torch.testing.assert_close(grad.double(), grads[rank],
                                       atol=1e-5, rtol=0)
            torch.testing.assert_close(r_mean.double(), mean, atol=1e-5,
                                       rtol=0)
            torch.testing.assert_close(r_var.double(), var, atol=1e-5,
                                       rtol=0)


def test_cross_task_bn_under_low_precision(two_ranks):
    for r in two_ranks:
        ref = r['autocast']['float32']
        torch.testing.assert_close(r['autocast']['torch.float16'], ref,
                                   atol=1e-2, rtol=1e-2)
        torch.testing.assert_close(r['autocast']['torch.bfloat16'], ref,
                                   atol=5e-2, rtol=5e-2)


def test_hard_routing_on_cuda_keeps_replicas_equal(two_ranks):
    a, b = (r['hard'] for r in two_ranks)
    for unit_a, unit_b in zip(a, b):
        assert torch.equal(unit_a[0], unit_b[0])
        assert torch.equal(unit_a[1], unit_b[1])
        assert unit_a[2] == unit_b[2] == 20


def test_gradient_fusion_on_cuda(two_ranks):
    local = [r['fusion']['local'] for r in two_ranks]
    # the trunk is used by both ranks: mean of the local gradients; each
    # head by one rank: that rank's gradient
    expected = {}
    for name in local[0]:
        got = [g[name] for g in local if g[name] is not None]
        expected[name] = sum(got) / len(got)
    for r in two_ranks:
        for overlap in (True, False, None):
            grads, stats, _ = r['fusion'][overlap]
            for name, grad in expected.items():
                torch.testing.assert_close(grads[name], grad, atol=1e-5,
                                           rtol=1e-5, msg=name)
            assert stats['late'] == 0
            if overlap:
                assert stats['overlapped'] > 0
        # beside cross-task BN the default does not overlap (any backend)
        assert r['fusion'][None][2] is False
