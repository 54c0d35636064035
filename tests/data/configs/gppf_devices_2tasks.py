# Two tasks (MMSeg UperNet with BN heads, MMPretrain classifier) on the
# test config's slim lego backbone, for the tests that compare layouts of
# processes x virtual devices; no validation.
_base_ = ['./gppf_e2e_3tasks.py']
tasks = dict(
    _delete_=True,
    indoor_seg={{_base_.indoor_seg_task}},
    shapes_cls={{_base_.shapes_cls_task}})
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=3))
train_cfg = dict(max_iters=20, val_interval=100000)
