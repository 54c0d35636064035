# Oxford-IIIT Pets (mean per-class accuracy),
# transfer from a GPPF path (the paper's Table 7).
_base_ = '../../_base_/downstream/resnet50-gppf-path_cls-transfer.py'

data_root = 'data/Oxford-IIIT_Pets'
model = dict(head=dict(num_classes=37))
train_dataloader = dict(
    dataset=dict(type='OxfordIIITPet', data_root=data_root, split='trainval'))
val_dataloader = dict(
    dataset=dict(type='OxfordIIITPet', data_root=data_root, split='test'))
test_dataloader = val_dataloader
# mean per-class accuracy (the macro-averaged recall), and top-1
val_evaluator = [
    dict(type='SingleLabelMetric', items=['recall'], average='macro'),
    dict(type='Accuracy', topk=(1, )),
]
test_evaluator = val_evaluator

# no validation split: the grid search holds out 20 % of every class of
# 'trainval', and the chosen point then trains on all of 'trainval'
_train = dict(type='OxfordIIITPet', data_root=data_root, split='trainval')
grid_search = dict(
    metric='single-label/recall',
    train=dict(type='HoldoutSplit', part='train', dataset=_train),
    val=dict(type='HoldoutSplit', part='val', dataset=_train))
