# UODB LISA (traffic signs, 8k):
# the paper's Table 8 settings: 18000 iterations
# of batch 16, lr x0.1 at 12000 and 16000, test size 800, anchor sizes
# [[16], [32], [64], [128], [256]] (one per FPN level).
_base_ = '../../_base_/downstream/faster-rcnn_r50-gppf-path_uodb.py'

data_root = 'data/uodb/LISA/'
classes = (
    'warning', 'noturn', 'speedlimit', 'stop',
)
model = dict(
    rpn_head=dict(anchor_generator=dict(scales=[4])),
    roi_head=dict(bbox_head=dict(num_classes=len(classes))))
train_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=classes),
        img_suffix='.png'))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=classes),
        img_suffix='.png'))
test_dataloader = val_dataloader

max_iters = 18000
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=500),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[12000, 16000], gamma=0.1)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
