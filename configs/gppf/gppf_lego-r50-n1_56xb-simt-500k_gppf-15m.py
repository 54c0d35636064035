# Table 1, "GPPF static": one unit per layer (no routing), SIMT with
# cross-task BatchNorm statistics; otherwise the GPPF-R50 config.
_base_ = './gppf_lego-r50-n2-soft_56xb-simt-500k_gppf-15m.py'

model = dict(backbone=dict(num_units=1))
