# Table 1, single-task baseline: voc alone on the static backbone
# (one unit per layer) with its share of the budget, 500k x 1.0 / 21 = 23810
# iterations on the same 56 GPUs (warm-up scaled alike), so that the 8
# single-task runs together cost one GPPF run.
_base_ = './gppf_lego-r50-n1_56xb-simt-500k_gppf-15m.py'

tasks = dict(_delete_=True, voc={{_base_.voc}})
max_iters = 23810
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=2381),
    dict(
        type='CosineAnnealingLR', by_epoch=False, begin=2381,
        end=max_iters, eta_min=0.0)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
