# UODB Watercolor (1k):
# the paper's Table 8 settings: 1800 iterations
# of batch 16, lr x0.1 at 1500 and 1700, test size 800, anchor sizes
# [[32], [64], [128], [256], [512]] (one per FPN level).
_base_ = '../../_base_/downstream/faster-rcnn_r50-gppf-path_uodb.py'

data_root = 'data/uodb/watercolor/'
classes = (
    'bicycle', 'bird', 'car', 'cat', 'dog', 'person',
)
model = dict(
    roi_head=dict(bbox_head=dict(num_classes=len(classes))))
train_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=classes)))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=classes)))
test_dataloader = val_dataloader

max_iters = 1800
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=500),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[1500, 1700], gamma=0.1)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
