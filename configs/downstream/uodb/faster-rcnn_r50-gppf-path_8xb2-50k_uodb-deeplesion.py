# UODB DeepLesion (medical, 23k):
# the paper's Table 8 settings: 50000 iterations
# of batch 16, lr x0.1 at 30000 and 40000, test size 512, anchor sizes
# [[16], [32], [64], [128], [256]] (one per FPN level).
_base_ = '../../_base_/downstream/faster-rcnn_r50-gppf-path_uodb.py'

data_root = 'data/uodb/deeplesion/'
classes = ('lesion',)
model = dict(
    rpn_head=dict(anchor_generator=dict(scales=[4])),
    roi_head=dict(bbox_head=dict(num_classes=len(classes))))

# test size 512: DeepLesion's CT slices are 512 x 512
img_scale = (512, 512)
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
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=classes),
        img_suffix='.png',
        ann_file='ImageSets/Main/trainval.txt',
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=classes),
        img_suffix='.png',
        pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 50000
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=500),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[30000, 40000], gamma=0.1)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
