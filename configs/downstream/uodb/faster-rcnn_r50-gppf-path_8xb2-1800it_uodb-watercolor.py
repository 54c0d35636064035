# UODB Watercolor (1k):
# the paper's Table 8 settings, those of Comic (1800 iterations of batch
# 16, lr x0.1 at 1500 and 1700, test size 800, COCO anchors) and its 6
# classes; only the data differ.
_base_ = './faster-rcnn_r50-gppf-path_8xb2-1800it_uodb-comic.py'

data_root = 'data/uodb/watercolor/'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
