# GPPF on the embedded benchmark: a slim lego ResNet-50 (2 units per layer,
# soft routing), two detection + instance segmentation tasks (Mask R-CNN),
# two semantic segmentation tasks (UperNet + FCN auxiliary head) and one
# classification task, SIMT on 2 ranks with cross-task BN.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/gppf_algorithms_slim.py',
    '../_base_/datasets/gppf_bench.py',
    '../_base_/schedules/simt_sgd_iter.py',
]

max_iters = 400
warmup_iters = 50

model = dict(
    type='GPPF',
    backbone=dict(
        type='LegoResNet',
        depth=50,
        base_channels=16,
        num_units=2,
        routing_mode='soft',
        norm_eval=False,
        init_cfg=None),
    cross_task_bn=True)

tasks = dict(
    street_det={{_base_.street_det_task}},
    aerial_det={{_base_.aerial_det_task}},
    indoor_seg={{_base_.indoor_seg_task}},
    nature_seg={{_base_.nature_seg_task}},
    shapes_cls={{_base_.shapes_cls_task}},
)

optim_wrapper = dict(optimizer=dict(lr=0.02, weight_decay=1e-4))
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
    dict(type='SelectionLoggerHook', interval=100),
    dict(type='SIMTStateHook'),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=max_iters,
                    by_epoch=False, max_keep_ckpts=2))
log_processor = dict(window_size=20)
randomness = dict(seed=0)
