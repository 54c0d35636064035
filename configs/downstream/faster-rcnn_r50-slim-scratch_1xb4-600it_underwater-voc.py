# Row (a) of the small transfer table: the detector's backbone from scratch
# (MMDet's default initialisation).
_base_ = '../_base_/downstream/faster-rcnn_r50-slim_underwater-voc.py'
