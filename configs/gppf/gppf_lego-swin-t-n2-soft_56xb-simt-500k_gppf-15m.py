# GPPF-SwinT (Table 1, D.1): a lego Swin-T with 2 units per layer (soft
# routing) on the 8 GPPF-15M tasks with Cascade R-CNN for the detection
# tasks (configs/_base_/tasks/gppf_15m_swin-t.py); AdamW lr 1e-4, weight
# decay 0.05, otherwise the GPPF-R50 schedule. LayerNorm has no batch
# statistics, so there is no cross-task synchronisation.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/schedules/simt_sgd_iter.py',
    '../_base_/tasks/gppf_15m_swin-t.py',
]

model = dict(
    type='GPPF',
    backbone=dict(
        type='LegoSwinTransformer',
        embed_dims=96,
        depths=(2, 2, 6, 2),
        num_heads=(3, 6, 12, 24),
        window_size=7,
        drop_path_rate=0.2,
        num_units=2,
        routing_mode='soft',
        with_cp=True,
        init_cfg=None),
    cross_task_bn=False,
    task_stats=False)

# MMDet's Swin recipe: AdamW without weight decay on norms, position bias
# tables and the controller
optim_wrapper = dict(
    optimizer=dict(
        _delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999),
        weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
default_hooks = dict(checkpoint=dict(interval=10000, max_keep_ckpts=3))
# the paper's 56 ranks x the SIMT batch per rank (the tasks' batch sizes
# weighted by their sampling weights: 552 / 21): lr 0.16 is for 1472 images
auto_scale_lr = dict(enable=False, base_batch_size=1472)
