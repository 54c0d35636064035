# Copyright (c) gppf_mm contributors. All rights reserved.
"""Keep the ranks' cross-task BN collectives in step.

A cross-task norm all-reduces once in forward and once in backward. Its
backward runs only where autograd reaches it, i.e. where the loss depends
on its output. A task whose loss ignores the last backbone outputs (a head
with ``in_index=[0, 1, 2]`` on a backbone with four outputs) skips the
backward of the norms after its last used output while ranks running other
tasks make them: the collectives no longer pair up and the job hangs
without a message.

:class:`CollectiveCheck` finds those norms from the autograd graph at a
task's first training step on each rank (before backward, so before any
collective of the step's backward) and, by default, ties their outputs to
the loss with zero gradients: every norm then makes its backward collective,
with gradients unchanged. ``mode='error'`` raises instead, naming the task
and the norms. A norm that runs twice in one step (an algorithm that calls
the shared backbone twice) is refused before its second collective (see
:func:`gppf_mm.models.layers.collectives.record_collectives`).
"""
from contextlib import nullcontext
from typing import Dict, List, Optional, Set

import torch
import torch.nn as nn
from mmengine.logging import print_log

from gppf_mm.models.layers import CrossTaskBatchNorm2d
from gppf_mm.models.layers.collectives import (
    CollectiveRecord,
    record_collectives,
)

MODES = ('zero_grad', 'error')


def unreached(loss: torch.Tensor, outputs: List[torch.Tensor]) -> List[int]:
    """Indices of ``outputs`` whose gradient function the backward of
    ``loss`` does not reach."""
    targets = {id(o.grad_fn): i for i, o in enumerate(outputs)
               if o.grad_fn is not None}
    found: Set[int] = set()
    seen: Set[int] = set()
    stack = [loss.grad_fn]
    while stack and len(found) < len(targets):
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        if id(fn) in targets:
            found.add(targets[id(fn)])
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    return [i for i in range(len(outputs))
            if outputs[i].grad_fn is not None and i not in found]


class _ZeroGradTie(torch.autograd.Function):
    """``loss`` unchanged; zero gradients for ``outputs`` in backward."""

    @staticmethod
    def forward(ctx, loss, *outputs):
        ctx.specs = [(o.shape, o.dtype, o.device) for o in outputs]
        return loss.clone()

    @staticmethod
    def backward(ctx, grad):
        return (grad, ) + tuple(
            torch.zeros(shape, dtype=dtype, device=device)
            for shape, dtype, device in ctx.specs)


class CollectiveCheck:
    """Find, per task, the cross-task norms its loss does not reach, and tie
    them to the loss (``'zero_grad'``) or raise (``'error'``).

    Args:
        module (nn.Module): the wrapped model.
        mode (str): ``'zero_grad'`` or ``'error'``.
        active (bool): whether the model makes collectives at all
            (distributed, with cross-task norms).
    """

    def __init__(self, module: nn.Module, mode: str = 'zero_grad',
                 active: bool = True) -> None:
        if mode not in MODES:
            raise ValueError(f'unused_norms must be one of {MODES}, got '
                             f'{mode!r}')
        self.mode = mode
        self.names = {
            id(m): name
            for name, m in module.named_modules()
            if isinstance(m, CrossTaskBatchNorm2d)
        }
        self.active = active and bool(self.names)
        # task -> ids of the norms tied to its loss (checked once per task)
        self.tied: Dict[Optional[str], Set[int]] = {}

    def record(self, task: Optional[str]):
        """Context in which the step's forward runs."""
        if not self.active:
            return nullcontext(None)
        return record_collectives(task, self.names)

    def tie(self, task: Optional[str], loss: torch.Tensor,
            record: Optional[CollectiveRecord]) -> torch.Tensor:
        """``loss``, tied to the outputs of the norms it does not reach."""
        if record is None or not record.calls or loss.grad_fn is None:
            return loss
        outputs = [out for _, out in record.calls]
        if task not in self.tied:
            missed = unreached(loss, outputs)
            self.tied[task] = {id(record.calls[i][0]) for i in missed}
            if missed:
                self._report(task, [record.name(record.calls[i][0])
                                    for i in missed])
        tied = self.tied[task]
        if not tied:
            return loss
        return _ZeroGradTie.apply(
            loss, *[out for m, out in record.calls if id(m) in tied])

    def _report(self, task: Optional[str], names: List[str]) -> None:
        shown = ', '.join(names[:4]) + (
            f' and {len(names) - 4} more' if len(names) > 4 else '')
        what = (f'the loss of task {task!r} does not depend on the output '
                f'of {len(names)} cross-task norm(s) ({shown}): its head '
                'ignores backbone outputs (e.g. in_index or out_indices), so '
                'on its ranks these norms would skip the backward collective '
                'that the other ranks make')
        if self.mode == 'error':
            raise RuntimeError(
                f'{what}. Use every backbone output in the task, or set '
                "model_wrapper_cfg.unused_norms='zero_grad' to give them "
                'zero gradients.')
        print_log(f'{what}; they get zero gradients in every step of this '
                  'task, so the collectives stay in step.',
                  logger='current', level=30)
