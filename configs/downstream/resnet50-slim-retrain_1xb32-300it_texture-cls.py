# "Retrain": fixed-path finetuning on the path that
# lego-r50-slim-dyfinetune_1xb32-300it_texture-cls.py learned (the plain
# MMPretrain ResNet checkpoint its ExtractPathHook wrote).
_base_ = '../_base_/downstream/resnet50-slim_texture-cls.py'

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained',
            checkpoint='work_dirs/dyfinetune_texture_cls/texture_cls_path.pth',
            prefix='backbone.')))
