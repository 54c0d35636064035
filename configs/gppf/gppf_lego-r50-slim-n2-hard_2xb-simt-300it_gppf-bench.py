# GPPF on the embedded benchmark (`make demo`): a slim lego ResNet-50 (2
# units per layer, hard Gumbel routing), two detection + instance
# segmentation tasks (Mask R-CNN), two semantic segmentation tasks (UperNet +
# FCN auxiliary head) and one classification task, SIMT on 2 ranks with
# cross-task BN and per-task test statistics.
#
# Sized for 2 CPU cores and under 10 minutes: hard routing computes one unit
# per layer (soft routing computes both, 1.5-2x the iteration time here),
# the detectors sample fewer proposals and RoIs, and the classifier takes 32
# images per batch; the detection tasks, which need the most iterations to
# start detecting, are sampled most often.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/gppf_algorithms_slim.py',
    '../_base_/datasets/gppf_bench.py',
    '../_base_/schedules/simt_sgd_iter.py',
]

max_iters = 300
warmup_iters = 50

model = dict(
    type='GPPF',
    backbone=dict(
        type='LegoResNet',
        depth=50,
        base_channels=16,
        num_units=2,
        routing_mode='hard',
        norm_eval=False,
        init_cfg=None),
    cross_task_bn=True,
    task_stats=True)

# merged into the benchmark's task list (configs/_base_/datasets/gppf_bench.py)
_det = dict(
    sample_weight=3.0,
    algorithm=dict(
        train_cfg=dict(
            rpn_proposal=dict(nms_pre=500, max_per_img=200),
            rcnn=dict(sampler=dict(num=64)))))
tasks = dict(
    street_det=_det,
    aerial_det=_det,
    shapes_cls=dict(sample_weight=3.0, train_dataloader=dict(batch_size=32)))

# The logits must move by about 1 (top probability 0.5 -> 0.7) in 300
# iterations instead of the paper's 500k: a larger multiplier than the
# schedule's default 10 (docs/pretraining.md).
optim_wrapper = dict(
    optimizer=dict(lr=0.02, weight_decay=1e-4),
    paramwise_cfg=dict(
        custom_keys={'controller.logits': dict(lr_mult=50.0)}))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
        end=warmup_iters),
    dict(
        type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters,
        end=max_iters, eta_min=0.0)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
custom_hooks = [
    dict(type='GumbelTemperatureHook', start=5.0, end=0.01, end_ratio=0.9),
    dict(type='SelectionLoggerHook', interval=50),
    dict(type='SIMTStateHook'),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=max_iters,
                    by_epoch=False, max_keep_ckpts=2))
log_processor = dict(window_size=20)
randomness = dict(seed=0)
