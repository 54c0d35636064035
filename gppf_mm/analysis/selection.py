# Copyright (c) gppf_mm contributors. All rights reserved.
"""How settled a controller's selection is, read from the selection history
that :class:`~gppf_mm.engine.hooks.SelectionLoggerHook` keeps.

A *flip* is a change of a task x layer's argmax unit between two
consecutive snapshots. Flips early in training are exploration; the demo's
rule is that after the first ``settle`` fraction of training (30 %) no
task x layer changes its argmax unit more than once.
"""
from typing import Dict, Sequence

import torch


def _as_history(history_iters: Sequence[int], history) -> tuple:
    if isinstance(history, (list, tuple)):
        history = torch.stack([torch.as_tensor(h) for h in history]) \
            if len(history) else torch.zeros(0)
    history = torch.as_tensor(history, dtype=torch.float32)
    iters = [int(i) for i in history_iters]
    if history.dim() != 4:
        raise ValueError(f'history must be (snapshots, tasks, layers, '
                         f'units), got shape {tuple(history.shape)}')
    if len(iters) != history.shape[0]:
        raise ValueError(f'{len(iters)} iterations for a history of '
                         f'{history.shape[0]} snapshots')
    if any(b <= a for a, b in zip(iters, iters[1:])):
        raise ValueError(f'snapshot iterations must increase, got {iters}')
    return iters, history


def selection_flips(history_iters: Sequence[int],
                    history,
                    start: int = 0) -> torch.Tensor:
    """Argmax changes per task x layer after iteration ``start``.

    The reference is the last snapshot at or before ``start`` (the first
    snapshot when none is); every later snapshot whose argmax unit differs
    from the snapshot before it counts one flip.

    Args:
        history_iters: the K snapshot iterations, increasing.
        history: probabilities, shape (K, T, L, N).
        start: the iteration after which changes count.

    Returns:
        Tensor: flips, shape (T, L), dtype long.
    """
    iters, history = _as_history(history_iters, history)
    if history.shape[0] == 0:
        raise ValueError('the selection history is empty')
    first = max([k for k, it in enumerate(iters) if it <= start], default=0)
    best = history[first:].argmax(dim=-1)  # (K', T, L)
    return (best[1:] != best[:-1]).long().sum(dim=0)


def selection_summary(history_iters: Sequence[int],
                      history,
                      tasks: Sequence[str],
                      total_iters: int,
                      settle: float = 0.3) -> Dict[str, object]:
    """The figures of the demo's selection rule.

    Args:
        history_iters, history: as :func:`selection_flips`.
        tasks: the T task names.
        total_iters: the run's length; flips count after
            ``settle * total_iters``.
        settle (float): the fraction of training that is exploration.

    Returns:
        dict: ``mean_top_prob`` (of the last snapshot), ``flips`` (total),
        ``flips_by_task`` (dict), ``repeated`` (task x layer pairs that
        flipped more than once), ``pairs`` (T * L), ``start`` (the
        iteration after which flips count) and ``settled`` (no pair flipped
        more than once).
    """
    iters, history = _as_history(history_iters, history)
    if len(tasks) != history.shape[1]:
        raise ValueError(f'{len(tasks)} task names for a history of '
                         f'{history.shape[1]} tasks')
    start = int(round(settle * total_iters))
    flips = selection_flips(iters, history, start)
    repeated = int((flips > 1).sum())
    return dict(
        mean_top_prob=float(history[-1].max(dim=-1).values.mean()),
        flips=int(flips.sum()),
        flips_by_task={t: int(flips[i].sum())
                       for i, t in enumerate(tasks)},
        repeated=repeated,
        pairs=int(flips.numel()),
        start=start,
        settled=repeated == 0)
