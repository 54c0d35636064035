# An MMPretrain model named from a gppf_mm-scoped config.
_base_ = 'mmpretrain::_base_/models/resnet18.py'
default_scope = 'gppf_mm'
model = dict(
    type='mmpretrain.ImageClassifier',
    backbone=dict(base_channels=8),
    head=dict(in_channels=64, num_classes=5))
