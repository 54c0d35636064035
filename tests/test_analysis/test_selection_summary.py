# Copyright (c) gppf_mm contributors. All rights reserved.
"""Flip counting and the settle rule on a hand-made selection history."""
import pytest
import torch

from gppf_mm.analysis import selection_flips, selection_summary


def _p(unit0):
    """Two-unit probabilities with p(unit 0) = ``unit0``."""
    return [unit0, 1.0 - unit0]


# snapshots at iterations 0, 50, 100, 150, 200 of a 200-iteration run;
# 2 tasks x 3 layers x 2 units. Argmax unit per snapshot:
#   a/L0: 0 1 0 1 1   a/L1: 0 0 0 0 0   a/L2: 1 1 0 0 0
#   b/L0: 1 0 0 0 0   b/L1: 0 1 1 0 0   b/L2: 0 0 0 0 1
ITERS = [0, 50, 100, 150, 200]
HISTORY = torch.tensor([
    [[_p(.6), _p(.9), _p(.4)], [_p(.3), _p(.7), _p(.8)]],
    [[_p(.4), _p(.9), _p(.3)], [_p(.6), _p(.2), _p(.9)]],
    [[_p(.7), _p(.8), _p(.6)], [_p(.8), _p(.4), _p(.9)]],
    [[_p(.2), _p(.9), _p(.7)], [_p(.9), _p(.6), _p(.7)]],
    [[_p(.1), _p(.95), _p(.9)], [_p(.95), _p(.65), _p(.45)]],
])


def test_flips_count_every_argmax_change():
    flips = selection_flips(ITERS, HISTORY)
    assert flips.tolist() == [[3, 0, 1], [1, 2, 1]]


def test_flips_after_start_take_the_last_snapshot_before_it():
    # start 60 -> reference is the snapshot at 50; changes at 100, 150, 200
    flips = selection_flips(ITERS, HISTORY, start=60)
    assert flips.tolist() == [[2, 0, 1], [0, 1, 1]]
    # start beyond the last snapshot: nothing left to change
    assert selection_flips(ITERS, HISTORY, start=500).sum() == 0


def test_summary_applies_the_settle_rule():
    s = selection_summary(ITERS, HISTORY, ['a', 'b'], total_iters=200,
                          settle=0.3)
    # start = 60: flips [[2, 0, 1], [0, 1, 1]]
    assert s['start'] == 60
    assert s['flips'] == 5
    assert s['flips_by_task'] == {'a': 3, 'b': 2}
    assert s['repeated'] == 1 and s['pairs'] == 6
    assert not s['settled']
    top = HISTORY[-1].max(dim=-1).values.mean().item()
    assert s['mean_top_prob'] == pytest.approx(top)
    assert s['mean_top_prob'] == pytest.approx(
        (0.9 + 0.95 + 0.9 + 0.95 + 0.65 + 0.55) / 6)
    late = selection_summary(ITERS, HISTORY, ['a', 'b'], total_iters=200,
                             settle=0.6)  # start 120: at most one change each
    assert late['repeated'] == 0 and late['settled']
    assert late['flips'] == 3


def test_bad_history_is_refused():
    with pytest.raises(ValueError, match='increase'):
        selection_flips([0, 50, 50, 100, 200], HISTORY)
    with pytest.raises(ValueError, match='snapshots'):
        selection_flips([0, 50], HISTORY)
    with pytest.raises(ValueError, match='task names'):
        selection_summary(ITERS, HISTORY, ['a'], 200)
