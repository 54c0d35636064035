# "Retrain": fixed-path finetuning of depth on the path that
# bts_lego-r50-slim-dyfinetune_1xb8-300it_town-depth.py learned (the plain
# MMSeg ResNet checkpoint its ExtractPathHook wrote).
_base_ = '../_base_/downstream/bts_r50-slim_town-depth.py'

model = dict(
    backbone=dict(
        init_cfg=dict(
            _delete_=True,
            type='Pretrained',
            checkpoint='work_dirs/dyfinetune_town_depth/town_depth_path.pth',
            prefix='backbone.')))
