# Downstream monocular depth on the embedded benchmark's held-out
# `town_depth` (RGB PNGs, 16-bit depth PNGs in millimetres with 0 where
# there is no surface, `train.txt` / `val.txt` split files of
# `image depth` lines): MMSeg's DepthEstimator with the slim ResNet-50 the
# benchmark's GPPF configs pre-train and a BTS head (gppf_mm's, written
# from the BTS paper), MMSeg's SiLogLoss, and the KITTI evaluation protocol
# (KITTIDepthMetric: d1-d3, AbsRel, SqRel, RMSE, RMSElog, SILog, 1e-3 ..
# 80 m). Leaf configs in configs/downstream/ choose how the backbone
# starts. For KITTI itself: DepthSplitDataset on the Eigen split files,
# LoadDepthAnnotation(depth_rescale_factor=1 / 256), KBCrop and
# KITTIDepthMetric(crop_type='garg') (docs/downstream.md).
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(
    imports=['gppf_mm', 'gppf_mm.datasets', 'gppf_mm.evaluation',
             'gppf_mm.models'],
    allow_failed_imports=False)

data_root = '{{$GPPF_DATA_ROOT:data/gppf_bench}}/town_depth/'
max_depth = 80.0
crop_size = (64, 96)

model = dict(
    type='DepthEstimator',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        size_divisor=32,
        pad_val=0,
        seg_pad_val=0),  # padded depth is 0: no ground truth
    backbone=dict(
        type='ResNet',
        depth=50,
        stem_channels=16,
        base_channels=16,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=None),
    decode_head=dict(
        type='BTSHead',
        in_channels=[64, 128, 256, 512],
        channels=128,
        max_depth=max_depth,
        loss_decode=dict(type='SiLogLoss')),
    test_cfg=dict(mode='whole'))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3),
    dict(
        type='PackSegInputs',
        meta_keys=('img_path', 'depth_map_path', 'ori_shape', 'img_shape',
                   'pad_shape', 'scale_factor', 'flip', 'flip_direction')),
]


def _dataset(split, pipeline):
    return dict(
        type='DepthSplitDataset',
        data_root=data_root,
        ann_file=f'{split}.txt',
        pipeline=pipeline)


train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=_dataset('train', train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=_dataset('val', test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='KITTIDepthMetric', crop_type=None, min_depth_eval=1e-3,
    max_depth_eval=max_depth)
test_evaluator = val_evaluator

# The paper's KITTI recipe (Table 4 / D.2): SGD lr 0.01, momentum 0.9,
# weight decay 1e-8, cosine with a warm-up; here 300 iterations of batch 8.
max_iters = 300
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-8),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=30),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=30,
         end=max_iters, eta_min=0.0)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    checkpoint=dict(
        type='gppf_mm.GPPFCheckpointHook', interval=max_iters,
        by_epoch=False, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
