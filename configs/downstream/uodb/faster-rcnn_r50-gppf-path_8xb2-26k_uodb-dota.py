# UODB DOTA (aerial, 14k):
# the paper's Table 8 settings: 26000 iterations
# of batch 16, lr x0.1 at 18000 and 24000, test size 800, anchor sizes
# [[32], [64], [128], [256], [512]] (one per FPN level).
_base_ = '../../_base_/downstream/faster-rcnn_r50-gppf-path_uodb.py'

data_root = 'data/uodb/dota/'
classes = (
    'plane', 'baseball-diamond', 'bridge', 'ground-track-field',
    'small-vehicle', 'large-vehicle', 'ship', 'tennis-court',
    'basketball-court', 'storage-tank', 'soccer-ball-field', 'roundabout',
    'harbor', 'swimming-pool', 'helicopter',
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
        metainfo=dict(classes=classes),
        ann_file='ImageSets/Main/val.txt'))
test_dataloader = val_dataloader

max_iters = 26000
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=500),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[18000, 24000], gamma=0.1)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
