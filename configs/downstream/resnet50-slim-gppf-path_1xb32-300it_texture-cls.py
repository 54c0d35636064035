# Fixed-path finetuning: a stock MMPretrain ResNet-50 starts from one task's
# path of a GPPF checkpoint (its argmax unit per layer with that task's own
# BatchNorm statistics; MMPretrain's residual zero-init is replaced, as
# with Pretrained). Choose the checkpoint and the task on the command line:
#   python tools/train.py THIS_CONFIG --cfg-options \
#       model.backbone.init_cfg.checkpoint=work_dirs/demo/train/iter_450.pth \
#       model.backbone.init_cfg.task=shapes_cls
_base_ = '../_base_/downstream/resnet50-slim_texture-cls.py'

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='gppf_mm.GPPFPath',
            checkpoint='work_dirs/demo/train/iter_450.pth',
            task='shapes_cls')))
