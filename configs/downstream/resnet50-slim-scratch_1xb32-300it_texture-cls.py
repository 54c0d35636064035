# Row (a) of the small transfer table: the classifier's backbone from
# scratch (MMPretrain's default initialisation).
_base_ = '../_base_/downstream/resnet50-slim_texture-cls.py'
