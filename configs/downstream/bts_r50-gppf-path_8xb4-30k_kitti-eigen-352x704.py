# KITTI depth (the paper's Table 4): a stock MMSeg ResNet-50 started from a
# task's path of a GPPF checkpoint, the BTS head, the Eigen split and the
# paper's settings (D.2): batch 32 (8 GPUs x 4), loss weight 0.1, SGD lr
# 0.01, momentum 0.9, weight decay 1e-8, 30k iterations, cosine with a
# 1k warm-up. Training on KITTI's benchmark crop (bottom 352 rows, centred
# 1216 columns) then random 352 x 704 crops; evaluation on the full frames
# with the Garg crop, 1e-3 .. 80 m (docs/downstream.md has the data layout).
#   tools/dist_train.sh THIS_CONFIG 8 --cfg-options \
#       model.backbone.init_cfg.checkpoint=GPPF_CHECKPOINT \
#       model.backbone.init_cfg.task=coco
_base_ = '../_base_/downstream/bts_r50-slim_town-depth.py'

data_root = 'data/kitti/'
max_depth = 80.0
model = dict(
    data_preprocessor=dict(size_divisor=32),
    backbone=dict(
        stem_channels=64,
        base_channels=64,
        init_cfg=dict(
            _delete_=True,
            type='gppf_mm.GPPFPath',
            checkpoint='work_dirs/gppf/latest.pth',
            task='coco')),
    decode_head=dict(
        in_channels=[256, 512, 1024, 2048],
        channels=512,
        max_depth=max_depth,
        loss_decode=dict(type='SiLogLoss', loss_weight=0.1)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1 / 256),
    dict(type='KBCrop'),
    dict(type='RandomCrop', crop_size=(352, 704)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1 / 256),
    dict(
        type='PackSegInputs',
        meta_keys=('img_path', 'depth_map_path', 'ori_shape', 'img_shape',
                   'pad_shape', 'scale_factor', 'flip', 'flip_direction')),
]
_prefix = dict(img_path='raw', depth_map_path='gt')
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    dataset=dict(
        data_root=data_root,
        ann_file='eigen_train_files_with_gt.txt',
        data_prefix=_prefix,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        ann_file='eigen_test_files_with_gt.txt',
        data_prefix=_prefix,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(crop_type='garg', max_depth_eval=max_depth)
test_evaluator = val_evaluator

max_iters = 30000
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-8))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=1000),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=1000,
         end=max_iters, eta_min=0.0)
]
train_cfg = dict(max_iters=max_iters, val_interval=5000)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=5000, max_keep_ckpts=2))
auto_scale_lr = dict(enable=False, base_batch_size=32)
