# Copyright (c) gppf_mm contributors. All rights reserved.
"""Every entry of the slow tier (tests/slow_tests.txt) still names a test
file or a test function, so a renamed test cannot slip into the quick
tier unnoticed."""
import os.path as osp

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_every_slow_entry_names_an_existing_test():
    with open(osp.join(REPO, 'tests', 'slow_tests.txt')) as f:
        slow = [line.strip() for line in f
                if line.strip() and not line.startswith('#')]
    assert len(slow) > 10
    for entry in slow:
        path, _, name = entry.partition('::')
        assert osp.exists(osp.join(REPO, path)), entry
        if name:
            with open(osp.join(REPO, path)) as f:
                assert f'def {name}' in f.read(), entry
