# GPPF on the embedded benchmark (`make demo`): a slim lego ResNet-50 (2
# units per layer, hard Gumbel routing), two detection + instance
# segmentation tasks (Mask R-CNN), two semantic segmentation tasks (UperNet +
# FCN auxiliary head) and one classification task, SIMT on 2 ranks with
# cross-task BN and per-task test statistics.
#
# Sized for 2 CPU cores and under 10 minutes (docs/pretraining.md has the
# measurements behind each choice):
# - hard routing computes one unit per layer (soft routing computes both,
#   1.5-2x the iteration time here);
# - a step is bound by per-layer overheads and the ranks wait for each
#   other at every cross-task norm, so batches are as large as is nearly
#   free and about equal in pixels: 4 x 96^2 detection, 8 x 64^2
#   segmentation, 32 x 32^2 classification;
# - the detectors sample fewer proposals and RoIs and are sampled most;
# - the controller's logits get lr x500: under hard routing a task whose
#   selection is undecided runs a different path almost every iteration,
#   which cost the detectors most of their progress (box AP 0.8 / 0.5 with
#   x50, 1.3 / 0.8 with x150, 2.2 / 1.8 with x500, 6.3 / 4.0 with a static
#   backbone).
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
    train_dataloader=dict(batch_size=4),
    algorithm=dict(
        train_cfg=dict(
            rpn_proposal=dict(nms_pre=500, max_per_img=200),
            rcnn=dict(sampler=dict(num=64)))))
_seg = dict(sample_weight=1.5, train_dataloader=dict(batch_size=8))
tasks = dict(
    street_det=_det,
    aerial_det=_det,
    indoor_seg=_seg,
    nature_seg=_seg,
    shapes_cls=dict(sample_weight=2.5, train_dataloader=dict(batch_size=32)))

# The logits must move by more than 1 (top probability 0.5 -> 0.7 and
# beyond) in 300 iterations instead of the paper's 500k, and the sooner
# they decide the steadier each task's path: a much larger multiplier than
# the schedule's default 10 (docs/pretraining.md). The backbone's lr stays
# at 0.02: 0.04 made the joint run spike.
optim_wrapper = dict(
    optimizer=dict(lr=0.02, weight_decay=1e-4),
    paramwise_cfg=dict(
        custom_keys={'controller.logits': dict(lr_mult=500.0)}))
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
    checkpoint=dict(type='GPPFCheckpointHook', interval=max_iters,
                    by_epoch=False, max_keep_ckpts=2))
log_processor = dict(window_size=20)
randomness = dict(seed=0)
