# Classification transfer (the paper's Table 7, D.2, after the protocol of
# SimCLR / BYOL): a stock MMPretrain ResNet-50 classifier whose backbone
# starts from a task's path of a GPPF checkpoint, finetuned whole for 20k
# iterations of batch 256 (8 GPUs x 32) with SGD, momentum 0.9, cosine
# decay; random crops and flips for training, short side 256 and a centre
# crop of 224 for testing. Learning rate and weight decay come from a grid
# search on a validation split (tools/analysis_tools/cls_transfer_grid.py);
# the leaf configs in configs/downstream/cls_transfer/ name each dataset,
# its metric and the train / validation parts the search uses
# (`grid_search`).
_base_ = [
    'mmpretrain::_base_/models/resnet50.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(
    imports=['gppf_mm', 'gppf_mm.datasets'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='gppf_mm.GPPFPath',
            checkpoint='work_dirs/gppf/latest.pth',
            task='in21k')),
    head=dict(topk=(1, )))
data_preprocessor = dict(
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

# one point of the grid (7 learning rates in [1e-4, 0.1] x weight decay in
# {0} + 7 values in [1e-6, 1e-3], divided by the learning rate); the grid
# tool sets both
max_iters = 20000
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-3))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters)
]
train_cfg = dict(by_epoch=False, max_iters=max_iters, val_interval=max_iters)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(interval=100),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(enable=False, base_batch_size=256)
