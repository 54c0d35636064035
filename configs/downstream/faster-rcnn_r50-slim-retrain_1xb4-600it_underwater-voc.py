# "Retrain" (paper, Section 3.3): fixed-path finetuning on the path that
# dynamic finetuning learned; the stock MMDet ResNet-50 starts from the
# plain backbone checkpoint that ExtractPathHook wrote at the end of
# faster-rcnn_lego-r50-slim-dyfinetune_1xb4-600it_underwater-voc.py.
_base_ = '../_base_/downstream/faster-rcnn_r50-slim_underwater-voc.py'

model = dict(
    backbone=dict(
        init_cfg=dict(
            _delete_=True,
            type='Pretrained',
            checkpoint='work_dirs/dyfinetune_underwater_voc/'
            'underwater_voc_path.pth',
            prefix='backbone.')))
