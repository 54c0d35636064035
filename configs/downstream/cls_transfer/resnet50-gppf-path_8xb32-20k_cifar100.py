# CIFAR-100 (top-1),
# transfer from a GPPF path (the paper's Table 7).
_base_ = '../../_base_/downstream/resnet50-gppf-path_cls-transfer.py'

data_root = 'data/cifar100'
model = dict(head=dict(num_classes=100))
# 32 x 32 images in memory, no files: crops resized to 224 as for the
# other datasets
train_pipeline = [
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    dataset=dict(type='CIFAR100', data_root=data_root, split='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(type='CIFAR100', data_root=data_root, split='test',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader

# no validation split: the grid search holds out 20 % of every class of
# 'train', and the chosen point then trains on all of 'train'
_train = dict(type='CIFAR100', data_root=data_root, split='train')
grid_search = dict(
    metric='accuracy/top1',
    train=dict(type='HoldoutSplit', part='train', dataset=_train),
    val=dict(type='HoldoutSplit', part='val', dataset=_train))
