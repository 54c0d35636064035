# ImageNet-1K finetuning from a GPPF path (the paper's Table 6, D.2): the
# recipe of its IN-21K pre-training (RandAugment, Mixup 0.8, CutMix 1.0,
# Random Erasing 0.25, label smoothing 0.1; MMPretrain's Swin data
# pipeline has the first and the third), 300 epochs of batch 2048
# (8 GPUs x 256), SGD lr 0.01 (0.1 from scratch), momentum 0.9, weight decay
# 1e-4, cosine decay after a 20-epoch warm-up.
_base_ = [
    'mmpretrain::_base_/models/resnet50.py',
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
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
    head=dict(
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0),
    ]))
train_dataloader = dict(batch_size=256)

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=20,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=280, by_epoch=True, begin=20,
         end=300),
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=10)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=2048)
