# UODB Pascal VOC 07+12 (natural, 16k):
# the paper's Table 8 settings: 18000 iterations
# of batch 16, lr x0.1 at 12000 and 16000, test size 800, anchor sizes
# [[32], [64], [128], [256], [512]] (one per FPN level).
_base_ = '../../_base_/downstream/faster-rcnn_r50-gppf-path_uodb.py'

# Pascal VOC itself: MMDet's VOCDataset on VOC 2007 + 2012 trainval, tested
# on VOC 2007 test (UODB's VOC set); AP50 in the area mode all the same
# (MMDet warns that VOC 2007 defaults to 11 points).
data_root = 'data/VOCdevkit/'
model = dict(roi_head=dict(bbox_head=dict(num_classes=20)))
_voc = dict(
    type='VOCDataset',
    data_root=data_root,
    filter_cfg=dict(filter_empty_gt=True, min_size=4),
    pipeline={{_base_.train_pipeline}})
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        ignore_keys=['dataset_type'],
        datasets=[
            dict(
                _voc,
                ann_file='VOC2007/ImageSets/Main/trainval.txt',
                data_prefix=dict(sub_data_root='VOC2007/')),
            dict(
                _voc,
                ann_file='VOC2012/ImageSets/Main/trainval.txt',
                data_prefix=dict(sub_data_root='VOC2012/')),
        ]))
val_dataloader = dict(
    dataset=dict(
        type='VOCDataset',
        data_root=data_root,
        ann_file='VOC2007/ImageSets/Main/test.txt',
        data_prefix=dict(sub_data_root='VOC2007/')))
test_dataloader = val_dataloader

max_iters = 18000
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=500),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[12000, 16000], gamma=0.1)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
