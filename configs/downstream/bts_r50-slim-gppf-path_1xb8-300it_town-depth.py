# Fixed-path finetuning of depth: a stock MMSeg ResNet-50 starts from one
# task's path of a GPPF checkpoint (with its BatchNorm statistics):
#   python tools/train.py THIS_CONFIG --cfg-options \
#       model.backbone.init_cfg.checkpoint=work_dirs/demo/train/iter_450.pth \
#       model.backbone.init_cfg.task=nature_seg
_base_ = '../_base_/downstream/bts_r50-slim_town-depth.py'

model = dict(
    backbone=dict(
        init_cfg=dict(
            _delete_=True,
            type='gppf_mm.GPPFPath',
            checkpoint='work_dirs/demo/train/iter_450.pth',
            task='nature_seg')))
