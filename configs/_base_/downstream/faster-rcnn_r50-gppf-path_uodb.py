# UODB detection (the paper's Table 5) with its finetuning settings (D.2,
# Table 8): a stock MMDet Faster R-CNN R-50-FPN whose backbone starts from a
# task's path of a GPPF checkpoint and whose neck and heads start from the
# GPPF Objects365 detector, all but its final classification and regression
# layers. Batch 16 (8 GPUs x 2), SGD lr 0.01, momentum 0.9, weight decay
# 4e-5, decayed twice by 0.1; the leaf configs in configs/downstream/uodb/
# set each dataset's classes, steps, test size and anchors.
#
# Before training, write the Objects365 neck and heads once:
#   python tools/extract_path.py work_dirs/gppf/latest.pth \
#       --task objects365 --heads-only \
#       --out work_dirs/gppf/objects365_heads.pth
# The backbone's path is chosen on the command line; the paper's rows are
# the objects365 path, the in21k path and a DyFinetune path (a file that
# ExtractPathHook wrote, loaded as in the retrain configs):
#   tools/dist_train.sh LEAF_CONFIG 8 --cfg-options \
#       model.backbone.init_cfg.task=in21k
#
# Datasets are in the VOC layout UODB releases (docs/downstream.md):
# data/uodb/<Dataset>/{JPEGImages,Annotations,ImageSets/Main}, read by
# UODBDataset (MMDet's VOCDataset with a configurable image suffix);
# Pascal VOC itself is MMDet's VOCDataset on VOCdevkit.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/voc0712.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(
    imports=['gppf_mm', 'gppf_mm.datasets'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        init_cfg=dict(
            _delete_=True,
            type='gppf_mm.GPPFPath',
            checkpoint='work_dirs/gppf/latest.pth',
            task='objects365')))
load_from = 'work_dirs/gppf/objects365_heads.pth'

img_scale = (1333, 800)  # test size 800 (the short side)
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
    batch_size=2,
    num_workers=2,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        _delete_=True,
        type='UODBDataset',
        ann_file='ImageSets/Main/train.txt',
        data_prefix=dict(sub_data_root=''),
        filter_cfg=dict(filter_empty_gt=True, min_size=4),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type='UODBDataset',
        ann_file='ImageSets/Main/test.txt',
        data_prefix=dict(sub_data_root=''),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# AP50 as the paper reports it ("VOC 2012 AP50", the area under the
# interpolated precision-recall curve); eval_mode='11points' gives the
# VOC 2007 11-point AP of UODB's own code.
val_evaluator = dict(
    type='VOCMetric', metric='mAP', iou_thrs=[0.5], eval_mode='area')
test_evaluator = val_evaluator

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=4e-5))
train_cfg = dict(type='IterBasedTrainLoop')
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=2000, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(enable=False, base_batch_size=16)
