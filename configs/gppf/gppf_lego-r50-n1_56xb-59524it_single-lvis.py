# Table 1, single-task baseline: lvis alone on the static backbone
# (one unit per layer) with its share of the budget, 500k x 2.5 / 21 = 59524
# iterations on the same 56 GPUs (warm-up scaled alike), so that the 8
# single-task runs together cost one GPPF run.
_base_ = './gppf_lego-r50-n1_56xb-simt-500k_gppf-15m.py'

tasks = dict(_delete_=True, lvis={{_base_.lvis}})
max_iters = 59524
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=5952),
    dict(
        type='CosineAnnealingLR', by_epoch=False, begin=5952,
        end=max_iters, eta_min=0.0)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
