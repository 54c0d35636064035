# Downstream classification on the embedded benchmark's held-out
# `texture_cls` (6 texture classes, 32 x 32 images, an ImageNet-style
# `meta/{train,val}.txt` list), with MMPretrain's ResNet-50 classifier
# shrunk to the slim ResNet-50 the benchmark's GPPF configs pre-train
# (stage widths 64/128/256/512). Leaf configs in configs/downstream/ choose
# how the backbone starts.
#
# The model, CustomDataset, the transforms and Accuracy are MMPretrain's;
# the recipe is the paper's transfer recipe shrunk (Section 4.3: random
# crop + flip, SGD).
_base_ = [
    'mmpretrain::_base_/models/resnet50.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['gppf_mm'], allow_failed_imports=False)

data_root = '{{$GPPF_DATA_ROOT:data/gppf_bench}}/texture_cls/'
classes = ('stripes', 'checker', 'dots', 'waves', 'grid', 'blotches')

model = dict(
    backbone=dict(stem_channels=16, base_channels=16),
    head=dict(in_channels=512, num_classes=len(classes), topk=(1, )))
data_preprocessor = dict(
    num_classes=len(classes),
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]


def _dataset(split, pipeline):
    return dict(
        type='CustomDataset',
        data_root=data_root,
        ann_file=f'meta/{split}.txt',
        data_prefix='',
        metainfo=dict(classes=classes),
        pipeline=pipeline)


train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=_dataset('train', train_pipeline))
val_dataloader = dict(
    batch_size=60,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=_dataset('val', test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

max_iters = 300
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=30),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=30,
         end=max_iters, eta_min=0.0)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(
        type='gppf_mm.GPPFCheckpointHook', interval=max_iters,
        by_epoch=False, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
