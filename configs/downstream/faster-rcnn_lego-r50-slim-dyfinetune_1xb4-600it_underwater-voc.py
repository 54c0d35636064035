# Dynamic finetuning (paper, Section 3.3): the downstream task gets a new
# Gumbel controller over the pre-trained lego units of a GPPF checkpoint;
# backbone and controller train together while the temperature decays
# 5.0 -> 0.01 over the first half of the steps and then stays; at the end
# the unit with the highest selection probability per layer is written as a
# plain MMDet ResNet checkpoint (work_dir/underwater_voc_path.pth), which
# the fixed-path "retrain" config starts from:
#   python tools/train.py THIS_CONFIG --cfg-options \
#       model.backbone.init_cfg.checkpoint=work_dirs/demo/train/iter_450.pth
#   python tools/train.py RETRAIN_CONFIG --cfg-options \
#       model.backbone.init_cfg.checkpoint=WORK_DIR/underwater_voc_path.pth
# with RETRAIN_CONFIG faster-rcnn_r50-slim-retrain_1xb4-600it_underwater-voc.py
#
# What the paper leaves open (docs/downstream.md has the reasons):
# - the controller starts at zero logits (uniform selection); the
#   pre-training tasks' preferences are not imposed;
# - soft routing (every unit runs, weighted by its Gumbel-Softmax sample):
#   the path sharpens as the temperature falls. Hard routing samples one
#   path per step whatever the temperature, so an undecided layer switches
#   units from step to step; it cost the detector 8-25 AP50 points in the
#   measurements of docs/downstream.md. Soft costs about 2x per step;
# - the controller's logits get lr x500 and no weight decay, as in the
#   benchmark's pre-training, so that the selection decides within the
#   short schedule.
_base_ = '../_base_/downstream/faster-rcnn_r50-slim_underwater-voc.py'

task = 'underwater_voc'
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
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
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
    dict(type='gppf_mm.ExtractPathHook', task=task, target='mmdet'),
]
