# GPPF-R50 (gppf_lego-r50-n2-soft_56xb-simt-500k_gppf-15m.py) with the
# paper's 56 devices on 8 GPUs: 7 virtual devices per GPU, each drawing its
# own task and batch (the paper's per-GPU batches, D.1) in every iteration,
# exactly as the 56 GPUs of the paper would. A GPU holds the activations of
# its 7 devices at once (with_cp recomputes every lego layer of the 7
# devices together in backward); `python tools/analysis_tools/
# config_footprint.py THIS_CONFIG --activations` estimates them
# (docs/virtual_devices.md).
#   tools/dist_train.sh THIS_CONFIG 8
_base_ = ['./gppf_lego-r50-n2-soft_56xb-simt-500k_gppf-15m.py']

# the 7 devices of a process share its 16 dataloader workers (2 each; 128
# per 8-GPU node, as in the 56-GPU config)
train_cfg = dict(virtual_devices=7, max_workers=16)
