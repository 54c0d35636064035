# An MMSeg model named from a gppf_mm-scoped config.
_base_ = 'mmseg::_base_/models/fcn_r50-d8.py'
default_scope = 'gppf_mm'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='mmseg.EncoderDecoder',
    data_preprocessor=dict(size=(32, 32)),
    pretrained=None,
    backbone=dict(stem_channels=8, base_channels=8, norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=256, channels=16, num_classes=4, norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=128, channels=16, num_classes=4, norm_cfg=norm_cfg))
