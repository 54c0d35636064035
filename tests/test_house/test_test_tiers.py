# Copyright (c) gppf_mm contributors. All rights reserved.
"""Every entry of the slow tier (tests/conftest.py) still names a test
file or a test function, so a renamed test cannot slip into the quick
tier unnoticed."""
import os.path as osp

from conftest import SLOW

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_every_slow_entry_names_an_existing_test():
    assert len(SLOW) > 10
    for entry in SLOW:
        path, _, name = entry.partition('::')
        assert osp.exists(osp.join(REPO, path)), entry
        if name:
            with open(osp.join(REPO, path)) as f:
                assert f'def {name}' in f.read(), entry
