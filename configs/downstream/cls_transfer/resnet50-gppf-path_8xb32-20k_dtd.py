# DTD, split 1 (top-1),
# transfer from a GPPF path (the paper's Table 7).
_base_ = '../../_base_/downstream/resnet50-gppf-path_cls-transfer.py'

data_root = 'data/dtd'
model = dict(head=dict(num_classes=47))
train_dataloader = dict(
    dataset=dict(type='DTD', data_root=data_root, split='trainval'))
val_dataloader = dict(
    dataset=dict(type='DTD', data_root=data_root, split='test'))
test_dataloader = val_dataloader

# the grid search trains on 'train' and selects on the dataset's own
# 'val' split; the chosen point then trains on 'trainval'
grid_search = dict(
    metric='accuracy/top1',
    train=dict(type='DTD', data_root=data_root, split='train'),
    val=dict(type='DTD', data_root=data_root, split='val'))
