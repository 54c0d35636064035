# CIFAR-100 (top-1),
# transfer from a GPPF path (the paper's Table 7): the CIFAR-10 config with
# MMPretrain's CIFAR100 and its 100 classes.
_base_ = './resnet50-gppf-path_8xb32-20k_cifar10.py'

data_root = 'data/cifar100'
_cifar100 = dict(type='CIFAR100', data_root=data_root)
model = dict(head=dict(num_classes=100))
train_dataloader = dict(dataset=_cifar100)
val_dataloader = dict(dataset=_cifar100)
test_dataloader = val_dataloader
grid_search = dict(
    train=dict(dataset=_cifar100), val=dict(dataset=_cifar100))
