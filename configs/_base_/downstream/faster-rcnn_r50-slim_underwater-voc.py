# Downstream detection on the embedded benchmark's held-out `underwater_voc`
# (VOC 2007 layout: JPEGImages, Annotations, ImageSets/Main/{trainval,test}
# .txt), with a stock MMDet Faster R-CNN shrunk to the slim ResNet-50 the
# benchmark's GPPF configs pre-train (stage widths 64/128/256/512). Leaf
# configs in configs/downstream/ choose how the backbone starts.
#
# The model, the pipelines and VOCMetric are MMDet's, inherited and shrunk;
# the dataset is MMDet's VOCDataset as UODBDataset (gppf_mm/datasets/uodb.py:
# .png images allowed, the dataset's own class names in VOCMetric's table).
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/voc0712.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(
    imports=['gppf_mm', 'gppf_mm.datasets'], allow_failed_imports=False)

data_root = '{{$GPPF_DATA_ROOT:data/gppf_bench}}/underwater_voc/'
classes = ('fish', 'crab', 'shell', 'jellyfish')
img_scale = (96, 96)

# The backbone trains whole and its BatchNorm in train mode (batch 4 at 96
# px, as in pre-training): the pre-training domains differ from this one,
# and a scratch backbone has no statistics to keep.
model = dict(
    backbone=dict(
        base_channels=16, frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=64),
    rpn_head=dict(
        in_channels=64,
        feat_channels=64,
        anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(
            in_channels=64, fc_out_channels=128, num_classes=len(classes))),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=200)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(
        _delete_=True,
        type='UODBDataset',
        data_root=data_root,
        ann_file='VOC2007/ImageSets/Main/trainval.txt',
        data_prefix=dict(sub_data_root='VOC2007/'),
        metainfo=dict(classes=classes),
        filter_cfg=dict(filter_empty_gt=True, min_size=4),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type='UODBDataset',
        data_root=data_root,
        metainfo=dict(classes=classes),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# AP50 as the paper reports it for UODB ("VOC 2012 AP50": the area under
# the interpolated precision-recall curve); eval_mode='11points' gives the
# VOC 2007 11-point AP that UODB's own code reports.
val_evaluator = dict(
    type='VOCMetric', metric='mAP', iou_thrs=[0.5], eval_mode='area')
test_evaluator = val_evaluator

# The paper's UODB schedule (Table 8): SGD lr 0.01, momentum 0.9, weight
# decay 4e-5, decayed twice by 0.1; here 600 iterations of batch 4.
max_iters = 600
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=4e-5),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=50),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[400, 550], gamma=0.1)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters,
    val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(
        type='gppf_mm.GPPFCheckpointHook', interval=max_iters,
        by_epoch=False, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
auto_scale_lr = dict(enable=False, base_batch_size=16)
