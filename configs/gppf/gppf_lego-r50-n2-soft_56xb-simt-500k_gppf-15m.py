# GPPF-R50, the paper's pre-training (Section 3, D.1): a lego ResNet-50 with
# 2 units per layer under per-task Gumbel-Softmax controllers (soft
# routing), the 8 tasks of GPPF-15M (configs/_base_/tasks/gppf_15m.py:
# stock MMDet / MMSeg / MMPretrain configs), SIMT on 56 GPUs (7 nodes x 8)
# with cross-task BatchNorm statistics; SGD lr 0.16, momentum 0.9, weight
# decay 5e-4, 500k iterations, cosine after a 50k warm-up; the temperature
# goes 5.0 -> 0.01 by 450k and stays; activation checkpointing on.
#   tools/slurm_train.sh PARTITION gppf THIS_CONFIG 56
#   (or tools/dist_train.sh THIS_CONFIG 8 on each of 7 nodes)
# Fewer GPUs: docs/paper_configs.md.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/schedules/simt_sgd_iter.py',
    '../_base_/tasks/gppf_15m.py',
]

model = dict(
    type='GPPF',
    backbone=dict(
        type='LegoResNet',
        depth=50,
        num_units=2,
        routing_mode='soft',
        norm_eval=False,
        with_cp=True,
        init_cfg=None),
    cross_task_bn=True,
    task_stats=True)

# each rank may draw any of the 8 tasks, whose upstream dataloaders ask for
# 0-5 workers each (23 in all): at most 16 per rank, 128 per 8-GPU node;
# a task's workers start the first time the rank draws it
train_cfg = dict(max_workers=16)
default_hooks = dict(
    checkpoint=dict(interval=10000, max_keep_ckpts=3))
# the paper's 56 ranks x the SIMT batch per rank (the tasks' batch sizes
# weighted by their sampling weights: 552 / 21): lr 0.16 is for 1472 images
auto_scale_lr = dict(enable=False, base_batch_size=1472)
