# Three tasks of three libraries (MMDet Mask R-CNN, MMSeg UperNet, MMPretrain
# classifier) on a slim lego backbone: the end-to-end test config.
_base_ = [
    '../../../configs/gppf/gppf_lego-r50-slim-n2-soft_2xb-simt-450it_gppf-bench.py'
]
max_iters = 6
model = dict(backbone=dict(base_channels=8, routing_mode='hard'))
algorithms = dict(
    mask_rcnn=dict(
        neck=dict(in_channels=[32, 64, 128, 256], out_channels=32),
        rpn_head=dict(in_channels=32, feat_channels=32),
        roi_head=dict(
            bbox_roi_extractor=dict(out_channels=32),
            bbox_head=dict(in_channels=32, fc_out_channels=32),
            mask_roi_extractor=dict(out_channels=32),
            mask_head=dict(in_channels=32, conv_out_channels=32))),
    upernet=dict(
        decode_head=dict(in_channels=[32, 64, 128, 256], channels=32),
        auxiliary_head=dict(in_channels=128, channels=16)),
    image_classifier=dict(head=dict(in_channels=256)))
tasks = dict(
    _delete_=True,
    street_det={{_base_.street_det_task}},
    indoor_seg={{_base_.indoor_seg_task}},
    shapes_cls={{_base_.shapes_cls_task}})
train_cfg = dict(max_iters=max_iters, val_interval=1000)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=3)
]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=3, max_keep_ckpts=3))
custom_hooks = [
    dict(type='GumbelTemperatureHook', start=5.0, end=0.5, end_iter=4),
    dict(type='SelectionLoggerHook', interval=3),
    dict(type='SIMTStateHook'),
]
