# Depth on town_depth from scratch (MMSeg's default initialisation).
_base_ = '../_base_/downstream/bts_r50-slim_town-depth.py'
