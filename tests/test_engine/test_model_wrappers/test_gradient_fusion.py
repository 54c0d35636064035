# Copyright (c) gppf_mm contributors. All rights reserved.
"""Gradient fusion: each parameter averaged over the ranks that used it."""
import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper

from gppf_mm.engine.model_wrappers import GradientFusionWrapper
from gppf_mm.registry import MODEL_WRAPPERS
from gppf_mm.testing import run_distributed


class ThreeBranch(BaseModel):
    """Task 'a' uses A and C, task 'b' uses B and C; 'h' is a head with BN
    used by task 'a' only."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.A = nn.Linear(4, 1, bias=False)
        self.B = nn.Linear(4, 1, bias=False)
        self.C = nn.Linear(4, 1, bias=False)
        self.head_bn = nn.BatchNorm1d(4)
        self.unused = nn.Linear(4, 1, bias=False)

    def forward(self, inputs, data_samples=None, mode='tensor', task=None):
        x = inputs
        if task == 'a':
            out = self.A(self.head_bn(x)) + self.C(x)
        elif task == 'b':
            out = self.B(x) + self.C(x)
        else:  # 'all': every parameter, including 'unused'
            out = self.A(x) + self.B(x) + self.C(x) + self.unused(x)
        return dict(loss=(out**2).mean())


def batch(rank, task, n):
    g = torch.Generator().manual_seed(10 + rank)
    return dict(inputs=torch.randn(n, 4, generator=g), task=task)


def local_grads(model, data):
    model.zero_grad(set_to_none=True)
    losses = model(**data, mode='loss')
    losses['loss'].backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()
            if p.grad is not None}


def fusion_worker(rank, world):
    model = ThreeBranch()
    # hand computation: what each rank would produce on its own
    data = [batch(0, 'a', 3), batch(1, 'b', 5)]
    mine = [local_grads(ThreeBranch(), d) for d in data]
    wrapper = GradientFusionWrapper(model)
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    wrapper.train_step(dict(data[rank]), optim)  # zero_grad'ed after step
    # redo the backward without stepping to inspect the fused gradients
    model2 = ThreeBranch()
    wrapper2 = GradientFusionWrapper(model2)
    losses = model2(**data[rank], mode='loss')
    losses['loss'].backward()
    wrapper2.fuse_gradients()
    fused = {n: (None if p.grad is None else p.grad.clone())
             for n, p in model2.named_parameters()}
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    return dict(fused=fused, mine=mine, weights=weights,
                usage=wrapper2.last_usage.tolist())


def test_fused_gradients_are_task_averages():
    res = run_distributed(fusion_worker, 2, timeout=120)
    mine = res[0]['mine']
    for r in res:
        fused = r['fused']
        torch.testing.assert_close(fused['A.weight'], mine[0]['A.weight'])
        torch.testing.assert_close(fused['B.weight'], mine[1]['B.weight'])
        torch.testing.assert_close(
            fused['C.weight'], (mine[0]['C.weight'] + mine[1]['C.weight']) / 2)
        torch.testing.assert_close(fused['head_bn.weight'],
                                   mine[0]['head_bn.weight'])
        assert fused['unused.weight'] is None
    # usage counts: A, B, C, head_bn.weight, head_bn.bias, unused
    assert res[0]['usage'] == [1.0, 1.0, 2.0, 1.0, 1.0, 0.0]
    for name, w in res[0]['weights'].items():
        assert torch.equal(w, res[1]['weights'][name]), name


def ddp_worker(rank, world):
    data = batch(rank, 'a', 2 + rank)
    model = ThreeBranch()
    wrapper = GradientFusionWrapper(model)
    model(**data, mode='loss')['loss'].backward()
    wrapper.fuse_gradients()
    ours = {n: p.grad.clone() for n, p in model.named_parameters()
            if p.grad is not None}
    ref_model = ThreeBranch()
    ddp = nn.parallel.DistributedDataParallel(
        ref_model, find_unused_parameters=True)
    ddp(**data, mode='loss')['loss'].backward()
    ref = {n: p.grad.clone() for n, p in ref_model.named_parameters()
           if p.grad is not None}
    return ours, ref


def test_same_task_everywhere_equals_ddp():
    for ours, ref in run_distributed(ddp_worker, 2, timeout=120):
        assert set(ours) == set(ref)
        for name in ref:
            torch.testing.assert_close(ours[name], ref[name], atol=1e-6,
                                       rtol=0)


def unused_worker(rank, world):
    model = ThreeBranch()
    wrapper = MODEL_WRAPPERS.build(
        dict(type='GradientFusionWrapper', module=model))
    optim = OptimWrapper(
        torch.optim.SGD(
            model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4))
    # step 1 uses every parameter: momentum buffers exist for all
    wrapper.train_step(batch(rank, 'all', 4), optim)
    before = model.unused.weight.detach().clone()
    momentum = optim.optimizer.state[model.unused.weight][
        'momentum_buffer'].clone()
    # step 2: rank 0 runs 'a', rank 1 runs 'b': nobody uses 'unused'
    task = 'a' if rank == 0 else 'b'
    data = wrapper.module.data_preprocessor(batch(rank, task, 4), True)
    wrapper.module(**data, mode='loss')['loss'].backward()
    wrapper.fuse_gradients()
    grad_none = model.unused.weight.grad is None
    optim.step()
    optim.zero_grad()
    wrapper.sync_norm_buffers()
    after = model.unused.weight.detach().clone()
    momentum_after = optim.optimizer.state[model.unused.weight][
        'momentum_buffer'].clone()
    return dict(
        grad_none=grad_none, same_w=torch.equal(before, after),
        same_m=torch.equal(momentum, momentum_after),
        bn=(model.head_bn.running_mean.clone(),
            model.head_bn.running_var.clone(),
            int(model.head_bn.num_batches_tracked)),
        rank0_bn_input=batch(0, 'a', 4)['inputs'])


def test_unused_parameters_untouched_and_head_bn_synced():
    res = run_distributed(unused_worker, 2, timeout=120)
    for r in res:
        assert r['grad_none'] and r['same_w'] and r['same_m']
    # the head BN ran on rank 0 only in step 2: both ranks hold rank 0's
    # statistics (momentum 0.1 from the initial 0 / 1)
    x = res[0]['rank0_bn_input']
    mean = 0.1 * x.mean(0)
    var = 0.9 * torch.ones(4) + 0.1 * x.var(0, unbiased=True)
    for r in res:
        torch.testing.assert_close(r['bn'][0], mean, atol=1e-6, rtol=0)
        torch.testing.assert_close(r['bn'][1], var, atol=1e-6, rtol=0)
        assert r['bn'][2] == 1
    assert not dist.is_initialized()
