# Copyright (c) gppf_mm contributors. All rights reserved.
"""Per-task loss curves read from MMEngine's scalars.json and drawn."""
import json
import os

import pytest

from gppf_mm.visualization import plot_task_losses, read_task_losses

RECORDS = [
    # street_det and shapes_cls ran in the window ending at iteration 20
    {'lr': 0.001, 'loss': 3.0, 'street_det.loss_rpn_cls': 0.5,
     'street_det.loss_bbox': 0.25, 'street_det.acc': 90.0,
     'street_det.iters': 7.0, 'shapes_cls.loss': 2.25, 'iter': 20,
     'step': 20},
    # validation records carry no training loss
    {'coco/bbox_mAP': 0.1, 'step': 20},
    {'lr': 0.001, 'loss': 2.0, 'street_det.loss_rpn_cls': 0.25,
     'street_det.loss_bbox': 0.5, 'nature_seg.decode.loss_ce': 1.5,
     'nature_seg.aux.loss_ce': 0.5, 'iter': 40, 'step': 40},
]


@pytest.fixture
def scalars(tmp_path):
    path = tmp_path / 'scalars.json'
    path.write_text('\n'.join(json.dumps(r) for r in RECORDS) + '\n\n')
    return str(path)


def test_each_task_sums_its_loss_terms(scalars):
    curves = read_task_losses(
        scalars, ['street_det', 'nature_seg', 'shapes_cls', 'indoor_seg'])
    # accuracy and iteration counters are not losses
    assert curves['street_det'] == ([20, 40], [0.75, 0.75])
    assert curves['nature_seg'] == ([40], [2.0])
    assert curves['shapes_cls'] == ([20], [2.25])
    assert curves['indoor_seg'] == ([], [])


def test_plot_has_a_panel_per_logged_task(scalars, tmp_path):
    curves = read_task_losses(scalars, ['street_det', 'shapes_cls',
                                        'indoor_seg'])
    out = plot_task_losses(curves, str(tmp_path / 'losses.png'),
                           chance={'shapes_cls': 2.302585})
    assert os.path.getsize(out) > 1000
    with pytest.raises(ValueError, match='no task'):
        plot_task_losses({'indoor_seg': ([], [])}, str(tmp_path / 'x.png'))
