# Copyright (c) gppf_mm contributors. All rights reserved.
"""A cross-task BN collective that does not complete: the error names the
rank, its task and the layer (2 gloo ranks, a 3 s group timeout)."""
import time
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.nn as nn

from gppf_mm.models.layers import convert_cross_task_bn
from gppf_mm.testing import run_distributed


def stalled(rank, world_size):
    group = dist.new_group(ranks=[0, 1], timeout=timedelta(seconds=3))
    model = convert_cross_task_bn(
        nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3)), group)
    model[1].set_tasks(['coco', 'ade'])
    model[1].set_active_task('coco')
    if rank == 1:  # stalls: never enters the norm's collective
        time.sleep(8)
        return None
    start = time.monotonic()
    try:
        model(torch.randn(2, 2, 4, 4))
    except RuntimeError as e:
        return str(e), time.monotonic() - start
    return 'no error', 0.0


def test_stalled_collective_names_rank_task_and_layer():
    message, seconds = run_distributed(stalled, 2, timeout=60)[0]
    assert message.startswith(
        "rank 0 (task 'coco'): the forward all-reduce of the cross-task norm "
        '1 did not complete'), message
    assert seconds < 8
