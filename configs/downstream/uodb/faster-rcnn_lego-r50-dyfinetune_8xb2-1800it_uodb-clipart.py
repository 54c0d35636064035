# UODB Clipart with dynamic finetuning (the paper's "GPPF-R50 (DyFinetune)"
# row of Table 5): the Clipart config with its backbone replaced by the
# GPPF lego units under a new controller for the downstream task, as the
# embedded-benchmark DyFinetune configs (configs/downstream/*dyfinetune*;
# docs/downstream.md gives the reasons for zero-logit init, soft routing
# and the controller's lr x500). The neck and heads start from the
# Objects365 task as in the fixed-path configs. At the end the argmax path
# is written as a plain MMDet ResNet (work_dir/uodb_clipart_path.pth); the
# fixed-path config retrains on it with
#   --cfg-options "model.backbone.init_cfg=dict(type='Pretrained',
#       checkpoint='WORK_DIR/uodb_clipart_path.pth', prefix='backbone.')"
# Other UODB datasets: inherit their config the same way.
_base_ = './faster-rcnn_r50-gppf-path_8xb2-1800it_uodb-clipart.py'

task = 'uodb_clipart'
model = dict(
    backbone=dict(
        _delete_=True,
        type='gppf_mm.LegoResNet',
        depth=50,
        num_units=2,
        tasks=[task],
        task=task,
        routing_mode='soft',
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(
            type='gppf_mm.LegoPretrained',
            checkpoint='work_dirs/gppf/latest.pth',
            prefix='backbone.')))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={
        'controller.logits': dict(lr_mult=500.0, decay_mult=0.0)
    }))
custom_hooks = [
    dict(type='gppf_mm.GumbelTemperatureHook', start=5.0, end=0.01,
         end_ratio=0.5),
    dict(type='gppf_mm.ExtractPathHook', task=task, target='mmdet'),
]
