# Dynamic finetuning of texture_cls over the pre-trained lego units of a
# GPPF checkpoint: a new controller (zero logits, soft routing, lr x500,
# no weight decay), temperature 5.0 -> 0.01 over the first half of the
# steps, and the argmax path written at the end as a plain MMPretrain
# ResNet checkpoint (work_dir/texture_cls_path.pth). See
# faster-rcnn_lego-r50-slim-dyfinetune_1xb4-600it_underwater-voc.py and
# docs/downstream.md.
_base_ = '../_base_/downstream/resnet50-slim_texture-cls.py'

task = 'texture_cls'
model = dict(
    backbone=dict(
        _delete_=True,
        type='gppf_mm.LegoResNet',
        depth=50,
        base_channels=16,
        num_units=2,
        tasks=[task],
        task=task,
        routing_mode='soft',
        out_indices=(3, ),
        style='pytorch',
        init_cfg=dict(
            type='gppf_mm.LegoPretrained',
            checkpoint='work_dirs/demo/train/iter_450.pth',
            prefix='backbone.')))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={
        'controller.logits': dict(lr_mult=500.0, decay_mult=0.0)
    }))
custom_hooks = [
    dict(type='gppf_mm.GumbelTemperatureHook', start=5.0, end=0.01,
         end_ratio=0.5),
    dict(type='gppf_mm.ExtractPathHook', task=task, target='mmpretrain'),
]
