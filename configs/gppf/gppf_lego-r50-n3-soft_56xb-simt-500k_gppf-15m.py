# Table 1, "GPPF dynamic N=3": three units per layer, soft routing.
_base_ = './gppf_lego-r50-n2-soft_56xb-simt-500k_gppf-15m.py'

model = dict(backbone=dict(num_units=3))
