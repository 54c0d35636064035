# Table 1, "SIMT without cross-task BN": the static config with every
# rank's BatchNorm statistics its own (no cross-task synchronisation).
_base_ = './gppf_lego-r50-n1_56xb-simt-500k_gppf-15m.py'

model = dict(cross_task_bn=False)
