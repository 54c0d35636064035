# Table 1, per-batch task sampling: every rank trains the same task in an
# iteration (one task per global batch) instead of SIMT's one task per rank;
# static backbone as in the paper's ablation.
_base_ = './gppf_lego-r50-n1_56xb-simt-500k_gppf-15m.py'

train_cfg = dict(sampling='per_batch')
