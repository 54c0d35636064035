# FGVC Aircraft, variants (mean per-class accuracy),
# transfer from a GPPF path (the paper's Table 7).
_base_ = '../../_base_/downstream/resnet50-gppf-path_cls-transfer.py'

data_root = 'data/fgvc-aircraft-2013b'
model = dict(head=dict(num_classes=100))
train_dataloader = dict(
    dataset=dict(type='FGVCAircraft', data_root=data_root, split='trainval'))
val_dataloader = dict(
    dataset=dict(type='FGVCAircraft', data_root=data_root, split='test'))
test_dataloader = val_dataloader
# mean per-class accuracy (the macro-averaged recall), and top-1
val_evaluator = [
    dict(type='SingleLabelMetric', items=['recall'], average='macro'),
    dict(type='Accuracy', topk=(1, )),
]
test_evaluator = val_evaluator

# the grid search trains on 'train' and selects on the dataset's own
# 'val' split; the chosen point then trains on 'trainval'
grid_search = dict(
    metric='single-label/recall',
    train=dict(type='FGVCAircraft', data_root=data_root, split='train'),
    val=dict(type='FGVCAircraft', data_root=data_root, split='val'))
