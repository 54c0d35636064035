# Stanford Cars (top-1),
# transfer from a GPPF path (the paper's Table 7).
_base_ = '../../_base_/downstream/resnet50-gppf-path_cls-transfer.py'

data_root = 'data/Stanford_Cars'
model = dict(head=dict(num_classes=196))
train_dataloader = dict(
    dataset=dict(type='StanfordCars', data_root=data_root, split='train'))
val_dataloader = dict(
    dataset=dict(type='StanfordCars', data_root=data_root, split='test'))
test_dataloader = val_dataloader

# no validation split: the grid search holds out 20 % of every class of
# 'train', and the chosen point then trains on all of 'train'
_train = dict(type='StanfordCars', data_root=data_root, split='train')
grid_search = dict(
    metric='accuracy/top1',
    train=dict(type='HoldoutSplit', part='train', dataset=_train),
    val=dict(type='HoldoutSplit', part='val', dataset=_train))
