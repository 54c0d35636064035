# Copyright (c) gppf_mm contributors. All rights reserved.
"""Virtual devices train exactly what as many ranks train: the real
GPPF config (slim lego ResNet, cross-task BN with per-task statistics,
MMDet / MMSeg / MMPretrain algorithms on the embedded benchmark) trained
for 20 iterations with P processes x K devices and with P*K processes x 1
gives the same loss of every task at every iteration, and the same
weights, BatchNorm running statistics and per-task statistics at the end
(the fused gradients included: a gradient that differs moves the weights
apart). A run resumes across layouts with the same number of devices."""
import os.path as osp

import pytest
import torch

from gppf_mm.datasets.generation import generate_benchmark
from gppf_mm.testing.layouts import train_layout

DATA = osp.join(osp.dirname(__file__), '..', '..', 'data', 'configs')
THREE = osp.join(DATA, 'gppf_e2e_3tasks.py')
TWO = osp.join(DATA, 'gppf_devices_2tasks.py')
ITERS = 20
NO_EVAL = {
    'val_dataloader': None, 'val_evaluator': None, 'val_cfg': None,
    'test_dataloader': None, 'test_evaluator': None, 'test_cfg': None
}


@pytest.fixture(scope='module')
def bench(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('bench') / 'gppf_bench')
    generate_benchmark(root, seed=0, scale='tiny')
    return root


# SGD with the selection logits fixed: Adam's normalised steps and learnt
# hard selections turn differences in the last bit into visible ones. At lr
# 0.02 the classifier's training grew such differences about threefold per
# iteration on one machine's CPU kernels (to 2e-3 in a loss after 20
# iterations; 1e-6 on another machine); at 0.005 they stay below 5e-8.
STEADY = dict(optim_wrapper=dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.005, momentum=0.9),
    paramwise_cfg=dict(custom_keys={
        'controller.logits': dict(lr_mult=0.0)})))


def options(routing, iters=ITERS, **extra):
    opts = dict(NO_EVAL)
    opts.update({
        'train_cfg.max_iters': iters,
        'default_hooks.checkpoint.interval': 10,
        'model.backbone.routing_mode': routing,
    })
    opts.update(extra)
    return opts


def losses(logs):
    """Every logged loss of every iteration (each task's losses are the
    mean over the devices that ran the task)."""
    out = {}
    for record in logs:
        if 'loss' not in record:
            continue
        for key, value in record.items():
            if 'loss' in key or key.endswith('.iters'):
                out[(record['iter'], key)] = value
    return out


def assert_same_training(a, b, atol=1e-6, rtol=1e-6, iters=ITERS):
    la, lb = losses(a['logs']), losses(b['logs'])
    assert len(la) > iters and la.keys() == lb.keys()
    worst = max(abs(la[k] - lb[k]) for k in la)
    assert worst <= atol, worst
    sa, sb = a['state'], b['state']
    assert sa.keys() == sb.keys()
    checked = [k for k in sa if sa[k].is_floating_point()]
    # the weights, running and per-task statistics of every norm
    assert any('task_mean__' in k for k in checked)
    assert any('running_var' in k for k in checked)
    for key in checked:
        torch.testing.assert_close(
            sa[key], sb[key], atol=atol, rtol=rtol,
            msg=lambda m, key=key: f'{key}: {m}')
    for key in sa:
        if not sa[key].is_floating_point():
            assert torch.equal(sa[key], sb[key]), key


def test_hard_routing_one_process_of_two_devices_equals_two_ranks(
        bench, tmp_path):
    """Mask R-CNN, UperNet and a classifier, each device its own task,
    batch, Gumbel noise and RNG (the RoI samplers draw from it)."""
    opts = options('hard')
    ranks = train_layout(THREE, str(tmp_path / 'p2'), 2, 1, opts, bench)
    devices = train_layout(THREE, str(tmp_path / 'd2'), 1, 2, opts, bench)
    tasks = {k[1].split('.')[0] for k in losses(devices['logs'])}
    assert {'street_det', 'indoor_seg', 'shapes_cls'} <= tasks
    assert_same_training(ranks, devices)


def test_static_backbone_one_process_of_two_devices_equals_two_ranks(
        bench, tmp_path):
    opts = options('soft', **{'model.backbone.num_units': 1})
    ranks = train_layout(TWO, str(tmp_path / 'p2'), 2, 1, opts, bench)
    devices = train_layout(TWO, str(tmp_path / 'd2'), 1, 2, opts, bench)
    assert_same_training(ranks, devices)


def test_soft_routing_one_process_of_two_devices_equals_two_ranks(
        bench, tmp_path):
    """Soft routing (every unit of every layer on every device). Its sums
    over a layer input's consumers run in another order when two devices
    share the backward pass (1e-6 relative in a gradient), and learnt
    selection logits turn such differences into different selections
    within 20 iterations even between two runs of the same layout
    (docs/pretraining.md): here the logits stay fixed (STEADY), everything
    else trains, and the reordered sums leave the weights within 3e-6
    (1.4e-6 measured; the losses within 5e-8)."""
    opts = options('soft', **STEADY)
    ranks = train_layout(TWO, str(tmp_path / 'p2'), 2, 1, opts, bench)
    devices = train_layout(TWO, str(tmp_path / 'd2'), 1, 2, opts, bench)
    assert_same_training(ranks, devices, atol=3e-6)


def test_with_cp_recomputes_the_devices_together(bench, tmp_path):
    """with_cp: every lego layer of the process's devices is recomputed
    together in backward, so its norms pool the devices again."""
    opts = options('hard', iters=10, **{'model.backbone.with_cp': True})
    ranks = train_layout(TWO, str(tmp_path / 'p2'), 2, 1, opts, bench)
    devices = train_layout(TWO, str(tmp_path / 'd2'), 1, 2, opts, bench)
    assert_same_training(ranks, devices, iters=10)


def test_per_batch_sampling_gives_every_device_the_same_task(bench,
                                                            tmp_path):
    """sampling='per_batch' (the paper's baseline): the devices of every
    process draw one task in each iteration, as ranks do."""
    opts = options('hard', iters=6, **{'train_cfg.sampling': 'per_batch'})
    run = train_layout(TWO, str(tmp_path / 'd2'), 1, 2, opts, bench)
    previous = {'indoor_seg': 0, 'shapes_cls': 0}
    for record in run['logs']:
        if 'loss' not in record:
            continue
        now = {t: record[f'{t}.iters'] for t in previous}
        grown = {t: now[t] - previous[t] for t in now}
        assert sorted(grown.values()) == [0, 2], grown
        previous = now


def test_four_devices_in_any_layout_and_resume_across_layouts(
        bench, tmp_path):
    """4 ranks x 1 device and 1 process x 4 devices train alike; a 1 x 4
    run resumed as 2 processes x 2 devices continues as the uninterrupted
    1 x 4 run. Four devices' gradients are summed in another order than
    four ranks' all-reduce sums them (1e-7 relative per step), so the
    comparison runs 10 iterations per layout (20 in all; measured: losses
    within 5e-8, weights within 7e-6)."""
    ranks = train_layout(TWO, str(tmp_path / 'p4'), 4, 1,
                         options('hard', iters=10, **STEADY), bench)
    full = train_layout(TWO, str(tmp_path / 'd4'), 1, 4,
                        options('hard', **STEADY), bench)
    first = [r for r in full['logs'] if r.get('iter', 0) <= 10]
    head_a, head_b = losses(ranks['logs']), losses(first)
    assert head_a.keys() == head_b.keys() and len(head_a) > 10
    assert max(abs(head_a[k] - head_b[k]) for k in head_a) <= 1e-6
    resumed = train_layout(TWO, str(tmp_path / 'd2x2'), 2, 2,
                           options('hard', **STEADY), bench,
                           resume_from=str(tmp_path / 'd4' / 'iter_10.pth'))
    tail_a = {k: v for k, v in losses(full['logs']).items() if k[0] > 10}
    tail_b = losses(resumed['logs'])
    assert tail_a.keys() == tail_b.keys() and len(tail_a) > 10
    assert max(abs(tail_a[k] - tail_b[k]) for k in tail_a) <= 1e-6
    sa, sb = full['state'], resumed['state']
    for key in sa:
        if sa[key].is_floating_point():
            torch.testing.assert_close(
                sa[key], sb[key], atol=1e-5, rtol=1e-5,
                msg=lambda m, key=key: f'{key}: {m}')
        else:
            assert torch.equal(sa[key], sb[key]), key
