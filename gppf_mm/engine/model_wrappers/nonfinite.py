# Copyright (c) gppf_mm contributors. All rights reserved.
"""One decision on every rank when a step's loss or gradient is not
finite.

After gradient fusion every rank holds the same gradients (each one the
mean over the ranks that produced it), so a NaN or Inf that one task's
batch produced on one rank reaches every rank's copy of the parameters it
touched, and :class:`NonFiniteGuard` takes the same decision everywhere
without a collective of its own: skip the update on every rank and restore
the norms' running statistics that the step's forward changed (``'skip'``,
counted and logged, and turned into an error after ``max_consecutive``
skips in a row), or stop with an error that names the task(s) and the
iteration (``'raise'``). Only in that rare iteration do the ranks exchange
their task names and losses, to name the culprit.
"""
from typing import List, Optional

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.logging import MessageHub, print_log
from torch.nn.modules.batchnorm import _BatchNorm

MODES = ('skip', 'raise', 'off')


class NonFiniteGuard:
    """Check the fused gradients before the optimizer step.

    Args:
        module (nn.Module): the wrapped model.
        mode (str): ``'skip'``, ``'raise'`` or ``'off'``.
        max_consecutive (int): with ``'skip'``, raise after this many
            skipped updates in a row.
        process_group: the group the gradients were fused over.
    """

    def __init__(self, module: nn.Module, mode: str = 'skip',
                 max_consecutive: int = 10, process_group=None) -> None:
        if mode not in MODES:
            raise ValueError(f'nonfinite must be one of {MODES}, got '
                             f'{mode!r}')
        if not (isinstance(max_consecutive, int) and max_consecutive >= 1):
            raise ValueError('max_consecutive_skips must be an int >= 1, '
                             f'got {max_consecutive!r}')
        self.mode = mode
        self.max_consecutive = max_consecutive
        self.process_group = process_group
        self.norms = [m for m in module.modules()
                      if isinstance(m, _BatchNorm)]
        self.skipped = 0
        self.consecutive = 0
        self.steps = 0
        self._live: List[torch.Tensor] = []
        self._saved: List[torch.Tensor] = []

    @property
    def active(self) -> bool:
        return self.mode != 'off'

    def snapshot(self) -> None:
        """Keep the norms' buffers before the step's forward changes them
        (a few numbers per channel)."""
        if not self.active:
            return
        current = [b for m in self.norms for b in m.buffers(recurse=False)]
        if len(current) != len(self._live) or any(
                a is not b for a, b in zip(current, self._live)):
            self._live = current  # first step, or buffers were replaced
            self._saved = [b.detach().clone() for b in current]
        elif current:  # one fused copy, not a clone per buffer (~3x faster)
            torch._foreach_copy_(self._saved, current)

    @torch.no_grad()
    def _restore(self) -> None:
        if self._live:
            torch._foreach_copy_(self._live, self._saved)

    def _iteration(self) -> int:
        hub = MessageHub.get_current_instance()
        it = hub.get_info('iter') if hub is not None else None
        return self.steps - 1 if it is None else int(it)

    def _culprits(self, task: Optional[str], loss: torch.Tensor) -> str:
        mine = (task, bool(torch.isfinite(loss.detach()).all()))
        if dist.is_available() and dist.is_initialized() and \
                dist.get_world_size(self.process_group) > 1:
            gathered: list = [None] * dist.get_world_size(self.process_group)
            dist.all_gather_object(gathered, mine, group=self.process_group)
        else:
            gathered = [mine]
        bad = [f'{t!r} (rank {r})' for r, (t, ok) in enumerate(gathered)
               if not ok]
        if not bad:  # finite losses, non-finite gradients
            bad = [f'{t!r} (rank {r})' for r, (t, _) in enumerate(gathered)]
            return 'the gradients of the tasks ' + ', '.join(bad)
        return 'the loss of task(s) ' + ', '.join(bad)

    def check(self, params: List[nn.Parameter], task: Optional[str],
              loss: torch.Tensor) -> bool:
        """Whether to step. Every rank gets the same answer: the fused
        gradients are the same on every rank."""
        self.steps += 1
        if not self.active:
            return True
        grads = [p.grad for p in params if p.grad is not None]
        finite = bool(torch.isfinite(loss.detach()).all())
        if grads:
            norms = torch._foreach_norm(grads)
            finite = bool(torch.isfinite(torch.stack(norms)).all())
        if finite:
            self.consecutive = 0
            return True
        it = self._iteration()
        where = self._culprits(task, loss)
        self.consecutive += 1
        if self.mode == 'raise' or self.consecutive > self.max_consecutive:
            why = ('' if self.mode == 'raise' else
                   f' in {self.consecutive} iterations in a row')
            raise FloatingPointError(
                f'iteration {it}: {where} produced a non-finite value{why}; '
                'training stops with the weights of the last finite '
                "update (model_wrapper_cfg.nonfinite='skip' skips such "
                'updates instead).')
        self._restore()
        self.skipped += 1
        print_log(
            f'iteration {it}: {where} produced a non-finite value; the '
            'update is skipped on every rank and the norms keep their '
            f'statistics ({self.skipped} skipped so far).',
            logger='current', level=30)
        return False
