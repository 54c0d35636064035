# Copyright (c) gppf_mm contributors. All rights reserved.
"""Gradient fusion: each parameter averaged over the ranks that used it.

All two-rank scenarios run in one spawn (module fixture) to keep the tests
fast; the test functions check its results.
"""
import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.model import BaseModel, is_model_wrapper
from mmengine.optim import OptimWrapper
from torch.utils.checkpoint import checkpoint

from gppf_mm.engine.model_wrappers import GradientFusionWrapper
from gppf_mm.models.layers import CrossTaskBatchNorm2d
from gppf_mm.registry import MODEL_WRAPPERS
from gppf_mm.testing import run_distributed

PARAMS = ['A.weight', 'B.weight', 'C.weight', 'head_bn.weight',
          'head_bn.bias', 'unused.weight', 'shared_bn.weight',
          'shared_bn.bias']


class ThreeBranch(BaseModel):
    """Task 'a' uses A, C and the head BN; task 'b' uses B and C; task 'all'
    uses every parameter. ``shared_bn`` is a cross-task BN that no task
    runs (its buffers must not be touched by the norm sync)."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.A = nn.Linear(4, 1, bias=False)
        self.B = nn.Linear(4, 1, bias=False)
        self.C = nn.Linear(4, 1, bias=False)
        self.head_bn = nn.BatchNorm1d(4)
        self.unused = nn.Linear(4, 1, bias=False)
        self.shared_bn = CrossTaskBatchNorm2d(2)

    def forward(self, inputs, data_samples=None, mode='tensor', task=None):
        x = inputs
        if task == 'a':
            out = self.A(self.head_bn(x)) + self.C(x)
        elif task == 'a_checkpointed':
            # reentrant checkpointing re-enters A's graph during backward:
            # A's gradient arrives without being announced
            x = x.clone().requires_grad_()
            a = checkpoint(
                lambda t: self.A(self.head_bn(t)), x, use_reentrant=True)
            out = a + self.C(x)
        elif task == 'a_mixed':
            # A also runs outside the checkpoint: its gradient grows again
            # when backward re-enters the checkpointed graph
            x = x.clone().requires_grad_()
            a = checkpoint(
                lambda t: self.A(self.head_bn(t)), x, use_reentrant=True)
            out = a + self.A(x) + self.C(x)
        elif task == 'b':
            out = self.B(x) + self.C(x)
        elif task == 'all':
            out = (self.A(self.head_bn(x)) + self.B(x) + self.C(x) +
                   self.unused(x))
        else:
            raise ValueError(task)
        return dict(loss=(out**2).mean())


class TaskStems(BaseModel):
    """A cross-task BN shared by two tasks, a head per task and a stem that
    only task 'a' runs before the BN. The stem is registered last, so its
    bucket comes first: rank 1 (task 'b', no stem) launches it before
    backward, rank 0 only after the BN's backward all-reduce."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.bn = CrossTaskBatchNorm2d(2)
        self.head_a = nn.Conv2d(2, 1, 1)
        self.head_b = nn.Conv2d(2, 1, 1)
        self.stem_a = nn.Conv2d(2, 2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor', task=None):
        if task == 'a':
            out = self.head_a(self.bn(self.stem_a(inputs)))
        else:
            out = self.head_b(self.bn(inputs))
        return dict(loss=(out**2).mean())


def batch(rank, task, n):
    g = torch.Generator().manual_seed(10 + rank)
    return dict(inputs=torch.randn(n, 4, generator=g) + rank, task=task)


def local_grads(data):
    model = ThreeBranch()
    model(**data, mode='loss')['loss'].backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()
            if p.grad is not None}


def grads_of(model):
    return {n: (None if p.grad is None else p.grad.clone())
            for n, p in model.named_parameters()}


def capture_fused(model, optim):
    """``train_step`` zero-grads after the step: record the fused gradients
    when the optim wrapper steps. Returns the dict they go into."""
    fused = {}
    step = optim.step

    def capturing_step(**kwargs):
        fused.update(grads_of(model))
        step(**kwargs)

    optim.step = capturing_step
    return fused


def weights_of(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


# ----------------------------------------------------------- scenarios
def task_average_case(rank):
    """Rank 0 runs task 'a', rank 1 task 'b'."""
    data = [batch(0, 'a', 3), batch(1, 'b', 5)]
    # different seeds: the construction broadcast makes rank 1 match
    model = ThreeBranch(seed=rank)
    default_overlap = GradientFusionWrapper(
        ThreeBranch(seed=rank), broadcast_init=False).overlap
    wrapper = GradientFusionWrapper(model, overlap=True)
    initial = weights_of(model)
    lr = 0.1
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=lr))
    fused = capture_fused(model, optim)
    log_vars = wrapper.train_step(dict(data[rank]), optim)
    return dict(
        fused=fused, mine=[local_grads(d) for d in data], initial=initial,
        weights=weights_of(model), usage=wrapper.last_usage.tolist(),
        stats=dict(wrapper.fusion_stats), lr=lr,
        loss=float(log_vars['loss']), default_overlap=default_overlap,
        grads_after=[n for n, g in grads_of(model).items()
                     if g is not None])


def ddp_case(rank):
    """Every rank on task 'all', different batch sizes: DDP's average."""
    data = batch(rank, 'all', 2 + rank)
    model = ThreeBranch()
    wrapper = GradientFusionWrapper(model)
    model(**data, mode='loss')['loss'].backward()
    wrapper.fuse_gradients()
    ref_model = ThreeBranch()
    ddp = nn.parallel.DistributedDataParallel(
        ref_model, find_unused_parameters=True, broadcast_buffers=False)
    ddp(**data, mode='loss')['loss'].backward()
    ours = {n: g for n, g in grads_of(model).items() if g is not None}
    ref = {n: g for n, g in grads_of(ref_model).items() if g is not None}
    return ours, ref


def unused_case(rank):
    """Step 1 uses every parameter, step 2 nobody uses ``unused``; the head
    BN runs on rank 0 only in step 2."""
    model = ThreeBranch()
    wrapper = MODEL_WRAPPERS.build(
        dict(type='GradientFusionWrapper', module=model))
    optim = OptimWrapper(
        torch.optim.SGD(
            model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4))
    wrapper.train_step(batch(rank, 'all', 4), optim)
    state = optim.optimizer.state[model.unused.weight]
    before = (model.unused.weight.detach().clone(),
              state['momentum_buffer'].clone())
    bn_before = (model.head_bn.running_mean.clone(),
                 model.head_bn.running_var.clone())
    shared_before = model.shared_bn.running_mean.clone()
    model.shared_bn.running_mean.fill_(float(rank))  # must stay as is
    task = 'a' if rank == 0 else 'b'
    wrapper.module(**batch(rank, task, 4), mode='loss')['loss'].backward()
    wrapper.fuse_gradients()
    grad_none = model.unused.weight.grad is None
    optim.step()
    optim.zero_grad()
    # what rank 0's head BN holds before the sync
    rank0_bn = (model.head_bn.running_mean.clone(),
                model.head_bn.running_var.clone())
    wrapper.sync_norm_buffers()
    after = (model.unused.weight.detach().clone(),
             optim.optimizer.state[model.unused.weight][
                 'momentum_buffer'].clone())
    return dict(
        grad_none=grad_none, before=before, after=after,
        bn_before=bn_before, rank0_bn=rank0_bn,
        bn=(model.head_bn.running_mean.clone(),
            model.head_bn.running_var.clone(),
            int(model.head_bn.num_batches_tracked)),
        shared=(shared_before, model.shared_bn.running_mean.clone()),
        usage=wrapper.last_usage.tolist(),
        is_wrapper=is_model_wrapper(wrapper),
        root_type=type(_build_from_root(model)).__name__)


def _build_from_root(model):
    """What Runner.wrap_model does with model_wrapper_cfg."""
    from mmengine.registry import MODEL_WRAPPERS as ROOT
    cls = ROOT.get('GradientFusionWrapper')
    assert ROOT.get('gppf_mm.GradientFusionWrapper') is cls
    return ROOT.build(
        dict(type='GradientFusionWrapper', broadcast_init=False),
        default_args=dict(module=model))


def small_bucket_case(rank):
    """Tiny buckets (one parameter each) give the same fused gradients."""
    out = []
    for size in (25.0, 1e-6):
        model = ThreeBranch()
        wrapper = GradientFusionWrapper(model, bucket_size_mb=size)
        task = 'a' if rank == 0 else 'b'
        model(**batch(rank, task, 3), mode='loss')['loss'].backward()
        wrapper.fuse_gradients()
        out.append((grads_of(model), wrapper.fusion_stats['buckets']))
    return out


def resumed_case(rank):
    """A checkpoint loaded after the wrapper is built (as Runner.resume
    does) changes the BN counters; the first update must not count that
    change as a run: rank 1 (task 'b') does not run the head BN."""
    model = ThreeBranch()
    wrapper = GradientFusionWrapper(model)
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    state = ThreeBranch(seed=1).state_dict()
    state['head_bn.running_mean'] = torch.full((4, ), 3.0)
    state['head_bn.num_batches_tracked'] = torch.tensor(7)
    model.load_state_dict(state)
    task = 'a' if rank == 0 else 'b'
    data = batch(rank, task, 4)
    expected = ThreeBranch(seed=1)
    expected.load_state_dict(state)
    expected.train()
    expected(**data, mode='loss')
    wrapper.train_step(data, optim)
    return dict(mean=model.head_bn.running_mean.clone(),
                tracked=int(model.head_bn.num_batches_tracked),
                ran=expected.head_bn.running_mean.clone())


def late_case(rank, tasks=('a_checkpointed', 'b')):
    """Rank r runs ``tasks[r]``; rank 0 runs part of A under reentrant
    checkpointing."""
    model = ThreeBranch()
    wrapper = GradientFusionWrapper(model, bucket_size_mb=1e-6, overlap=True)
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    fused = capture_fused(model, optim)
    wrapper.train_step(batch(rank, tasks[rank], 3), optim)
    return dict(fused=fused, stats=dict(wrapper.fusion_stats),
                usage=wrapper.last_usage.tolist())


def cross_bn_case(rank):
    """Overlapped fusion beside cross-task BN's backward all-reduces equals
    fusion after backward."""
    out = {}
    for overlap in (True, False):
        model = TaskStems()
        wrapper = GradientFusionWrapper(
            model, bucket_size_mb=1e-6, overlap=overlap)
        optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
        fused = capture_fused(model, optim)
        g = torch.Generator().manual_seed(rank)
        n = 2 + 3 * rank
        data = dict(inputs=torch.randn(n, 2, 3, 3, generator=g),
                    task='a' if rank == 0 else 'b')
        wrapper.train_step(data, optim)
        out[overlap] = (fused, dict(wrapper.fusion_stats))
    return out


# the tasks of ranks 0 and 1 in each step: the set of used parameters, and
# so the bucket layout, changes from step to step
SCHEDULE = [('a', 'b'), ('all', 'a'), ('b', 'b'), ('a', 'all'), ('b', 'a')]


def make_optim(model):
    return torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)


def schedule_case(rank):
    """Several updates with a changing bucket layout (buffers reused)."""
    out = {}
    for size, overlap in ((25.0, True), (2e-5, True), (2e-5, False)):
        model = ThreeBranch()
        wrapper = GradientFusionWrapper(
            model, bucket_size_mb=size, overlap=overlap)
        optim = OptimWrapper(make_optim(model))
        weights = []
        for step, tasks in enumerate(SCHEDULE):
            wrapper.train_step(batch(rank, tasks[rank], 3 + step), optim)
            weights.append(weights_of(model))
        out[(size, overlap)] = weights
    return out


def schedule_reference():
    """One process: set each gradient to the hand-computed task average of
    the ranks' local gradients at the current weights, then SGD."""
    model = ThreeBranch()
    optim = make_optim(model)
    weights = []
    for step, tasks in enumerate(SCHEDULE):
        local = []
        for rank, task in enumerate(tasks):
            replica = ThreeBranch()
            replica.load_state_dict(model.state_dict())
            replica(**batch(rank, task, 3 + step),
                    mode='loss')['loss'].backward()
            local.append(grads_of(replica))
        for name, p in model.named_parameters():
            got = [g[name] for g in local if g[name] is not None]
            p.grad = sum(got) / len(got) if got else None
        optim.step()
        optim.zero_grad()
        weights.append(weights_of(model))
    return weights


def accumulation_case(rank):
    """Two micro-batches with ``accumulative_counts=2`` against one step on
    both batches together (task 'b' has no BatchNorm, so the two are the
    same computation); rank r runs task 'b' on its own data."""
    data = batch(rank, 'b', 6)
    halves = [dict(inputs=data['inputs'][:3], task='b'),
              dict(inputs=data['inputs'][3:], task='b')]
    out = {}
    for counts, batches in ((1, [data]), (2, halves)):
        model = ThreeBranch()
        wrapper = GradientFusionWrapper(model)
        optim = OptimWrapper(
            torch.optim.SGD(model.parameters(), lr=0.5),
            accumulative_counts=counts)
        fused = capture_fused(model, optim)
        for b in batches:
            wrapper.train_step(dict(b), optim)
        out[counts] = (weights_of(model), fused)
    return out


def worker(rank, world):
    res = dict(
        accumulation=accumulation_case(rank),
        late=late_case(rank),
        regrown=late_case(rank, ('a_mixed', 'a')),
        cross_bn=cross_bn_case(rank),
        resumed=resumed_case(rank),
        task_average=task_average_case(rank),
        ddp=ddp_case(rank),
        unused=unused_case(rank),
        buckets=small_bucket_case(rank),
        schedule=schedule_case(rank))
    dist.barrier()
    return res


@pytest.fixture(scope='module')
def two_ranks():
    return run_distributed(worker, 2, timeout=120)


# ---------------------------------------------------------------- tests
def test_accumulation_equals_one_big_step(two_ranks):
    """The loss of each micro-batch is divided by the accumulation count,
    as MMEngine's ``OptimWrapper.update_params`` does."""
    for r in two_ranks:
        (big, big_grads), (acc, acc_grads) = (r['accumulation'][1],
                                              r['accumulation'][2])
        for name in ('B.weight', 'C.weight'):
            torch.testing.assert_close(acc_grads[name], big_grads[name],
                                       atol=1e-6, rtol=0, msg=name)
        for name, w in big.items():
            torch.testing.assert_close(acc[name], w, atol=1e-6, rtol=0,
                                       msg=name)
        assert float(big_grads['B.weight'].abs().sum()) > 1e-3


def test_fused_gradients_are_task_averages(two_ranks):
    res = [r['task_average'] for r in two_ranks]
    mine = res[0]['mine']
    # both ranks start from rank 0's replica
    for name, w in res[1]['initial'].items():
        assert torch.equal(w, res[0]['initial'][name]), name
    expected = {
        'A.weight': mine[0]['A.weight'],
        'B.weight': mine[1]['B.weight'],
        'C.weight': (mine[0]['C.weight'] + mine[1]['C.weight']) / 2,
        'head_bn.weight': mine[0]['head_bn.weight'],
        'head_bn.bias': mine[0]['head_bn.bias'],
    }
    for r in res:
        fused = r['fused']
        for name, grad in expected.items():
            torch.testing.assert_close(fused[name], grad, atol=1e-7,
                                       rtol=1e-6)
        assert fused['unused.weight'] is None
        assert fused['shared_bn.weight'] is None
        assert r['grads_after'] == []  # zero_grad after the step
        assert r['usage'] == [1, 1, 2, 1, 1, 0, 0, 0]
        # beside a cross-task BN the default fuses after backward
        assert r['default_overlap'] is False
        # train_step overlaps: the one bucket is launched during backward
        assert r['stats'] == dict(params=8, used_here=4 if r is res[0]
                                  else 2, fused=5, unused=3, buckets=1,
                                  overlapped=1, late=0)
        # SGD: w - lr * g with the fused gradient, identical on both ranks
        for name, grad in expected.items():
            torch.testing.assert_close(
                r['weights'][name], r['initial'][name] - r['lr'] * grad)
    for name, w in res[0]['weights'].items():
        assert torch.equal(w, res[1]['weights'][name]), name
    assert res[0]['loss'] != res[1]['loss']  # log_vars stay per rank


def test_same_task_everywhere_equals_ddp(two_ranks):
    for r in two_ranks:
        ours, ref = r['ddp']
        assert set(ours) == set(ref) == set(PARAMS) - {
            'shared_bn.weight', 'shared_bn.bias'}
        for name in ref:
            torch.testing.assert_close(ours[name], ref[name], atol=1e-6,
                                       rtol=0)


def test_unused_parameter_untouched(two_ranks):
    for r in (r['unused'] for r in two_ranks):
        assert r['grad_none']
        assert r['usage'] == [1, 1, 2, 1, 1, 0, 0, 0]
        assert torch.equal(r['before'][0], r['after'][0])
        assert torch.equal(r['before'][1], r['after'][1])
        assert r['before'][1].abs().sum() > 0  # momentum exists


def test_head_bn_buffers_synced_to_the_ranks_that_ran_it(two_ranks):
    res = [r['unused'] for r in two_ranks]
    # step 1 ran the head BN on both ranks: synced to the mean, so both
    # ranks held the same buffers before step 2
    for a, b in zip(res[0]['bn_before'], res[1]['bn_before']):
        assert torch.equal(a, b)
    # step 2 ran it on rank 0 only: both ranks end with rank 0's buffers
    for r in res:
        torch.testing.assert_close(r['bn'][0], res[0]['rank0_bn'][0],
                                   atol=1e-7, rtol=0)
        torch.testing.assert_close(r['bn'][1], res[0]['rank0_bn'][1],
                                   atol=1e-7, rtol=0)
        assert r['bn'][2] == 2
    assert not torch.equal(res[1]['rank0_bn'][0], res[0]['rank0_bn'][0])
    # cross-task BN buffers are left alone
    assert torch.equal(res[0]['shared'][1], torch.zeros(2))
    assert torch.equal(res[1]['shared'][1], torch.ones(2))


def test_norm_sync_after_a_checkpoint_load(two_ranks):
    res = [r['resumed'] for r in two_ranks]
    # only rank 0 ran the head BN: both ranks end with its statistics,
    # not the mean with rank 1's loaded (untouched) ones
    for r in res:
        torch.testing.assert_close(r['mean'], res[0]['ran'], atol=1e-6,
                                   rtol=0)
        assert r['tracked'] == 8
    assert not torch.allclose(res[0]['ran'], torch.full((4, ), 3.0))


def test_registry_and_wrapper_detection(two_ranks):
    for r in two_ranks:
        assert r['unused']['is_wrapper']
        assert r['unused']['root_type'] == 'GradientFusionWrapper'


def test_bucket_size_does_not_change_the_result(two_ranks):
    for r in two_ranks:
        (big, n_big), (small, n_small) = r['buckets']
        assert n_big == 1 and n_small == 5
        for name in PARAMS:
            if big[name] is None:
                assert small[name] is None
            else:
                assert torch.equal(big[name], small[name]), name


def test_single_process_is_plain_training():
    assert not dist.is_initialized()
    model = ThreeBranch()
    wrapper = GradientFusionWrapper(model)
    ref = ThreeBranch()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    ref_optim = torch.optim.SGD(ref.parameters(), lr=0.1)
    data = batch(0, 'a', 3)
    wrapper.train_step(dict(data), optim)
    ref(**data, mode='loss')['loss'].backward()
    ref_optim.step()
    for name, w in weights_of(ref).items():
        assert torch.equal(weights_of(model)[name], w), name
    assert wrapper.last_usage.tolist() == [1, 0, 1, 1, 1, 0, 0, 0]
    assert wrapper.fusion_stats['buckets'] == 0
    # val/test steps are the module's
    with pytest.raises(ValueError):
        wrapper.val_step(dict(inputs=torch.zeros(1, 4), task='x'))
    assert wrapper(**data, mode='loss')['loss'] > 0


@pytest.mark.parametrize('case,tasks,usage,buckets', [
    ('late', ('a', 'b'), [1, 1, 2, 1, 1, 0, 0, 0], 2),
    ('regrown', ('a_mixed', 'a'), [2, 0, 2, 2, 2, 0, 0, 0], 4),
])
def test_unannounced_gradient_is_fused_after_backward(two_ranks, case, tasks,
                                                      usage, buckets):
    """A gradient that backward produced outside the walked graph (reentrant
    checkpointing), or that grew again after its bucket was sent, still
    gets the task average."""
    local = [local_grads(batch(r, t, 3)) for r, t in enumerate(tasks)]
    for r in (r[case] for r in two_ranks):
        for name in PARAMS:
            got = [g[name] for g in local if name in g]
            if not got:
                assert r['fused'][name] is None, name
                continue
            # float32 sums in another order than the one-process backward
            torch.testing.assert_close(r['fused'][name], sum(got) / len(got),
                                       atol=1e-6, rtol=1e-5, msg=name)
        assert r['usage'] == usage
        # on rank 0, A and the head BN (inside the checkpoint) were fused
        # again, each in a bucket of its own; 'regrown' announced A and
        # sent it early, before backward re-entered the checkpoint
        assert r['stats']['late'] == 3
        assert r['stats']['buckets'] == buckets + 3


def test_overlap_beside_cross_task_bn_equals_fusion_after_backward(
        two_ranks):
    for r in (r['cross_bn'] for r in two_ranks):
        (overlapped, stats), (after, after_stats) = r[True], r[False]
        assert set(overlapped) == set(after)
        for name, grad in after.items():
            assert grad is not None, name
            torch.testing.assert_close(overlapped[name], grad, atol=1e-7,
                                       rtol=0)
        assert stats['overlapped'] > 0 and stats['late'] == 0
        assert after_stats['overlapped'] == 0
    # the replicas agree
    a, b = (r['cross_bn'][True][0] for r in two_ranks)
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_updates_with_changing_bucket_layouts_follow_the_task_averages(
        two_ranks):
    """Five updates whose used parameters change every step: the weights
    follow SGD on the hand-computed task averages (an unused parameter is
    skipped by the optimizer), whatever the bucket size, with and without
    overlap, on both ranks."""
    ref = schedule_reference()
    for r in two_ranks:
        for config, weights in r['schedule'].items():
            for step, (got, want) in enumerate(zip(weights, ref)):
                for name in want:
                    torch.testing.assert_close(
                        got[name], want[name], atol=1e-6, rtol=1e-5,
                        msg=f'{config} step {step} {name}')

