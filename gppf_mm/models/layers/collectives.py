# Copyright (c) gppf_mm contributors. All rights reserved.
"""The collectives of cross-task BN: recorded per training step (so that
the ranks' collectives can be checked to stay in step) and named in their
errors (rank, task and layer instead of a bare backend error)."""
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

import torch
import torch.distributed as dist
import torch.nn as nn


class CollectiveRecord:
    """The cross-task norms that made a forward collective in one training
    step, with their outputs (see :func:`record_collectives`)."""

    def __init__(self, task: Optional[str],
                 names: Dict[int, str]) -> None:
        self.task = task
        self.names = names
        self.calls: List[tuple] = []  # (norm, output)
        self._seen: set = set()

    def name(self, module: nn.Module) -> str:
        return self.names.get(id(module), type(module).__name__)

    def before(self, module: nn.Module) -> None:
        """Refuse a second collective of one norm in a step: the ranks that
        run it once would pair it with their backward collectives."""
        if id(module) in self._seen:
            raise RuntimeError(
                f'task {self.task!r}: the cross-task norm '
                f'{self.name(module)} ran twice in one training step (the '
                "task's algorithm runs the shared backbone more than once). "
                'Every rank must run each norm once per step, or the ranks\' '
                'collectives diverge and the job hangs; run the backbone '
                'once, or train this task without cross_task_bn.')
        self._seen.add(id(module))


_RECORD: Optional[CollectiveRecord] = None


@contextmanager
def record_collectives(task: Optional[str] = None,
                       names: Optional[Dict[int, str]] = None
                       ) -> Iterator[CollectiveRecord]:
    """Record every cross-task norm that all-reduces in the block (training
    with more than one rank), and refuse a norm that does so twice."""
    global _RECORD
    previous = _RECORD
    _RECORD = CollectiveRecord(task, names or {})
    try:
        yield _RECORD
    finally:
        _RECORD = previous


def current_record() -> Optional[CollectiveRecord]:
    """The record of the running :func:`record_collectives` block."""
    return _RECORD


def all_reduce_named(buf: torch.Tensor, bn: nn.Module, phase: str) -> None:
    """``dist.all_reduce`` of a cross-task norm; a collective that fails or
    times out raises an error naming this rank, its task and the layer."""
    try:
        dist.all_reduce(buf, group=bn.process_group)
    except RuntimeError as e:
        rank = dist.get_rank() if dist.is_initialized() else 0
        task = getattr(bn, 'active_task', None)
        record = _RECORD
        if task is None and record is not None:
            task = record.task
        name = getattr(bn, 'layer_name', None) or type(bn).__name__
        raise RuntimeError(
            f'rank {rank} (task {task!r}): the {phase} all-reduce of the '
            f'cross-task norm {name} did not complete; another rank stopped, '
            'hangs or runs a different number of collectives (backend: '
            f'{e})') from e
