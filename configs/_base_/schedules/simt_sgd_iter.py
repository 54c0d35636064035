# SIMT schedule: SGD + warm-up + cosine, iteration based (paper, D.1:
# lr 0.16, momentum 0.9, weight decay 5e-4, 5w warm-up of 50w, tau 5.0 ->
# 0.01 by 45w). Leaf configs scale max_iters and lr to their budget.
max_iters = 500000
warmup_iters = 50000

# The Gumbel controller's selection logits get their own settings
# (docs/controller.md): a larger learning rate, since their gradient is
# scaled by 1 / tau and by the small differences between units, and no
# weight decay, which would pull every task back to uniform selection.
controller_lr_mult = 10.0
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.16, momentum=0.9, weight_decay=5e-4),
    clip_grad=dict(max_norm=35, norm_type=2),
    paramwise_cfg=dict(custom_keys={
        'controller.logits': dict(lr_mult=controller_lr_mult,
                                  decay_mult=0.0)
    }))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=warmup_iters),
    dict(
        type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters,
        end=max_iters, eta_min=0.0)
]
train_cfg = dict(
    type='SIMTTrainLoop', max_iters=max_iters, val_interval=50000,
    sampling='simt')
val_cfg = dict(type='MultiTaskValLoop')
test_cfg = dict(type='MultiTaskTestLoop')

custom_hooks = [
    dict(type='GumbelTemperatureHook', start=5.0, end=0.01, end_ratio=0.9),
    dict(type='SelectionLoggerHook', interval=5000),
    dict(type='SIMTStateHook'),
]
runner_type = 'GPPFRunner'
model_wrapper_cfg = dict(type='gppf_mm.GradientFusionWrapper')
