# The demo (gppf_lego-r50-slim-n2-soft_2xb-simt-450it_gppf-bench.py) on one
# process: 5 virtual devices, as many as the benchmark has tasks, each
# drawing its own task and batch in every iteration. The backbone runs the 5
# devices together, cross-task BN pools their statistics and every gradient
# is the mean over the devices that used it, so one GPU trains what 5 GPUs
# with one task each would (gppf_mm/engine/runner/device_data.py).
#   python tools/train.py THIS_CONFIG
# The iterations, schedule and temperature are the demo's; every iteration
# trains 5 task-batches instead of 2 (docs/pretraining.md, virtual devices).
_base_ = ['./gppf_lego-r50-slim-n2-soft_2xb-simt-450it_gppf-bench.py']

train_cfg = dict(virtual_devices=5)
