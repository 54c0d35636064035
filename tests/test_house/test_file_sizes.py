# Copyright (c) gppf_mm contributors. All rights reserved.
"""No module of the package or its tools grows past 500 lines without a
written reason."""
import glob
import os.path as osp

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
LIMIT = 500
# path -> why it stays one file
LONGER = {
    'gppf_mm/testing/mini_pretrain.py':
    'one writer per pre-training dataset (8), each in its real format, '
    'one table of small functions',
    'gppf_mm/testing/mini_cls_transfer.py':
    'one writer per classification transfer dataset (21) in the format '
    "MMPretrain's own dataset class reads, one table of small functions",
}


def test_no_module_over_the_limit_without_a_reason():
    files = glob.glob(osp.join(REPO, 'gppf_mm', '**', '*.py'),
                      recursive=True)
    files += glob.glob(osp.join(REPO, 'tools', '**', '*.py'), recursive=True)
    assert len(files) > 80
    long = {}
    for path in files:
        with open(path) as f:
            n = sum(1 for _ in f)
        rel = osp.relpath(path, REPO)
        if n > LIMIT and rel not in LONGER:
            long[rel] = n
    assert long == {}, f'over {LIMIT} lines without a reason in LONGER'
    for rel in LONGER:  # a reason for a file that shrank goes
        with open(osp.join(REPO, rel)) as f:
            assert sum(1 for _ in f) > LIMIT, rel
