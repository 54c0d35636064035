# Copyright (c) gppf_mm contributors. All rights reserved.
"""A validation split held out of a classification training set, for
datasets that ship none (the transfer protocol the paper follows selects
learning rate and weight decay on one)."""
from typing import List, Sequence

import numpy as np
from mmpretrain.registry import DATASETS


def holdout_indices(labels: Sequence[int], fraction: float,
                    seed: int = 0) -> List[int]:
    """Indices of a stratified held-out part: in every class, ``fraction``
    of its samples (rounded, at least 1 when the class has 2 or more),
    chosen by a generator seeded with ``seed``; sorted."""
    if not 0 < fraction < 1:
        raise ValueError(f'HoldoutSplit: fraction must be in (0, 1), got '
                         f'{fraction!r}')
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        n = int(round(fraction * len(members)))
        if len(members) >= 2:
            n = min(max(n, 1), len(members) - 1)
        else:
            n = 0
        held.extend(rng.permutation(members)[:n].tolist())
    return sorted(held)


@DATASETS.register_module(name='HoldoutSplit')
def holdout_split(dataset: dict, part: str, fraction: float = 0.2,
                  seed: int = 0):
    """Build ``dataset`` and return its ``part``: ``'val'`` is a stratified
    ``fraction`` of every class (:func:`holdout_indices`), ``'train'`` the
    rest. The two parts are disjoint, cover the dataset and do not depend on
    the pipeline. The result is the dataset's own class (``get_subset``),
    so its metainfo and metrics are unchanged.

    Config::

        dict(type='HoldoutSplit', part='val', fraction=0.2,
             dataset=dict(type='Food101', data_root=..., split='train',
                          pipeline=...))
    """
    if part not in ('train', 'val'):
        raise ValueError(f"HoldoutSplit: part must be 'train' or 'val', got "
                         f'{part!r}')
    built = DATASETS.build(dataset)
    labels = built.get_gt_labels()
    held = holdout_indices(labels, fraction, seed)
    if part == 'val':
        keep = held
    else:
        held_set = set(held)
        keep = [i for i in range(len(labels)) if i not in held_set]
    if not keep:
        raise ValueError(
            f'HoldoutSplit: the {part} part of {dataset.get("type")} '
            f'({len(labels)} samples, fraction {fraction}) is empty')
    return built.get_subset(keep)
