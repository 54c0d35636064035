# An MMDet model named from a gppf_mm-scoped config.
_base_ = 'mmdet::_base_/models/faster-rcnn_r50_fpn.py'
default_scope = 'gppf_mm'
model = dict(
    type='mmdet.FasterRCNN',
    backbone=dict(base_channels=8, init_cfg=None),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(in_channels=32, fc_out_channels=64, num_classes=3)))
