# Copyright (c) gppf_mm contributors. All rights reserved.
"""MMPretrain CIFAR readers for the mini CIFAR copies.

MMPretrain's ``CIFAR10`` and ``CIFAR100`` accept their files only when the
md5 of every pickle (and of the meta file) equals that of the original
download; otherwise they try to download the original archive. The mini
copies written by
:func:`gppf_mm.testing.mini_cls_transfer.write_mini_cls_dataset`
have the real format (same folders, file names, pickle keys and array
layout) but other contents, so they cannot pass that check.
``MiniCIFAR10`` and ``MiniCIFAR100`` are the upstream classes with those md5
pins set to None (file presence is still checked) and nothing else
changed: the loading code that reads the files is MMPretrain's own.
"""
from mmpretrain.datasets import CIFAR10, CIFAR100
from mmpretrain.registry import DATASETS


def _unpinned(files):
    return [[name, None] for name, _ in files]


@DATASETS.register_module()
class MiniCIFAR10(CIFAR10):
    """:class:`mmpretrain.datasets.CIFAR10` without the md5 pins of the
    data and meta files (see the module docstring)."""

    train_list = _unpinned(CIFAR10.train_list)
    test_list = _unpinned(CIFAR10.test_list)
    meta = {**CIFAR10.meta, 'md5': None}


@DATASETS.register_module()
class MiniCIFAR100(CIFAR100):
    """:class:`mmpretrain.datasets.CIFAR100` without the md5 pins of the
    data and meta files (see the module docstring)."""

    train_list = _unpinned(CIFAR100.train_list)
    test_list = _unpinned(CIFAR100.test_list)
    meta = {**CIFAR100.meta, 'md5': None}
