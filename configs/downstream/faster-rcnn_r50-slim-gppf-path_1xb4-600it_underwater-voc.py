# Fixed-path finetuning: a stock MMDet ResNet-50 starts from one task's path
# of a GPPF checkpoint (the argmax unit per layer, with that task's own
# BatchNorm statistics), extracted when the model is initialised. Choose the
# checkpoint and the task (or an explicit path=[...]) on the command line:
#   python tools/train.py THIS_CONFIG --cfg-options \
#       model.backbone.init_cfg.checkpoint=work_dirs/demo/train/iter_450.pth \
#       model.backbone.init_cfg.task=street_det
_base_ = '../_base_/downstream/faster-rcnn_r50-slim_underwater-voc.py'

model = dict(
    backbone=dict(
        init_cfg=dict(
            _delete_=True,
            type='gppf_mm.GPPFPath',
            checkpoint='work_dirs/demo/train/iter_450.pth',
            task='street_det')))
