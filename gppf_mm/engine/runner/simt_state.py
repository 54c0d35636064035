# Copyright (c) gppf_mm contributors. All rights reserved.
"""Pieces of a SIMT rank's state: the global RNG states in a form that
loads with ``weights_only=True``, the Gumbel noise generators of the lego
controllers (one stream per rank), the state of a run with another number
of ranks, and when the per-rank states must be exchanged at all (only at
the iterations whose end writes a checkpoint)."""
import math
import random
from contextlib import contextmanager
from typing import Iterator, List, Sequence

import numpy as np
import torch
import torch.nn as nn


def gumbel_controllers(model: nn.Module) -> List[nn.Module]:
    """The Gumbel controllers of a (possibly wrapped) model, in module
    order."""
    from gppf_mm.models.routing import GumbelController
    return [m for m in model.modules() if isinstance(m, GumbelController)]


def gumbel_seed(seed: int, rank: int, index: int) -> int:
    """Seed of controller ``index``'s noise on ``rank``: distinct across
    ranks and controllers, fixed by the run's seed."""
    return (int(seed) * 1000003 + int(rank) * 9973 + int(index)) % (2**63)


def seed_gumbel_noise(model: nn.Module, seed: int, rank: int) -> int:
    """Give every controller of ``model`` its own noise generator for this
    rank (without it every rank draws the same noise from the same seeded
    global RNG); return how many were seeded."""
    controllers = gumbel_controllers(model)
    for i, controller in enumerate(controllers):
        controller.manual_seed(gumbel_seed(seed, rank, i))
    return len(controllers)


def gumbel_state(model: nn.Module) -> List[torch.Tensor]:
    """The state of every controller's noise generator (resumable)."""
    return [c._generator.get_state() for c in gumbel_controllers(model)
            if c._generator is not None]


def load_gumbel_state(model: nn.Module, states: List[torch.Tensor]) -> None:
    controllers = gumbel_controllers(model)
    if len(states) != len(controllers):
        raise ValueError(f'the checkpoint holds the noise state of '
                         f'{len(states)} Gumbel controllers, the model has '
                         f'{len(controllers)}')
    for controller, state in zip(controllers, states):
        if controller._generator is None:
            controller._generator = torch.Generator()
        controller._generator.set_state(state)


def checkpoint_due(runner) -> bool:
    """Whether an iteration-based checkpoint hook saves at the end of the
    current iteration (``runner.iter`` before it is counted), by the same
    test as MMEngine's ``CheckpointHook.after_train_iter``."""
    from mmengine.hooks import CheckpointHook
    for hook in runner.hooks:
        if not isinstance(hook, CheckpointHook) or hook.by_epoch:
            continue
        if hook.every_n_train_iters(runner, hook.interval,
                                    hook.save_begin) or (
                                        hook.save_last and
                                        hook.is_last_train_iter(runner)):
            return True
    return False


def cap_workers(loaders: dict, max_workers: int) -> dict:
    """Per-task ``num_workers`` of dataloader configs whose total fits
    ``max_workers`` (one rank's worker processes over all its tasks):
    every task keeps its share, ``n_t * cap / sum(n)`` rounded down, and
    the workers left by the rounding go to the tasks that lost the most.
    Loaders that are already built are left as they are."""
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) \
            or max_workers < 0:
        raise ValueError(f'SIMTTrainLoop: max_workers must be an int >= 0, '
                         f'got {max_workers!r}')
    asked = {t: int(cfg.get('num_workers', 0)) for t, cfg in loaders.items()
             if isinstance(cfg, dict)}
    total = sum(asked.values())
    if total <= max_workers:
        return dict(asked)
    exact = {t: n * max_workers / total for t, n in asked.items()}
    given = {t: int(v) for t, v in exact.items()}
    left = max_workers - sum(given.values())
    for t in sorted(asked, key=lambda t: given[t] - exact[t])[:left]:
        given[t] += 1
    return given


def rng_state() -> dict:
    """Global RNG states as tensors, numbers and lists, so that a checkpoint
    holding them loads with ``torch.load(weights_only=True)``."""
    np_state = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = dict(
        torch=torch.get_rng_state(),
        numpy=dict(
            key=torch.from_numpy(np_state[1].astype(np.int64)),
            pos=int(np_state[2]),
            has_gauss=int(np_state[3]),
            cached=float(np_state[4])),
        python=[version, list(internal), gauss])
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # the generator of the device this process computes on: a rank's
        # randomness does not depend on how many GPUs it can see, so the
        # state resumes under another CUDA_VISIBLE_DEVICES layout
        state['cuda'] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the states saved by :func:`rng_state`."""
    torch.set_rng_state(state['torch'])
    n = state['numpy']
    np.random.set_state(('MT19937', n['key'].numpy().astype(np.uint32),
                         int(n['pos']), int(n['has_gauss']),
                         float(n['cached'])))
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    cuda = state.get('cuda')
    if cuda is not None and torch.cuda.is_available():
        if isinstance(cuda, (list, tuple)):
            # older checkpoints hold every visible device's state; take the
            # one of the device this process computes on if it exists
            if not cuda:
                return
            index = torch.cuda.current_device()
            cuda = cuda[index] if index < len(cuda) else cuda[0]
        torch.cuda.set_rng_state(cuda)


@contextmanager
def preserved_rng_state() -> Iterator[None]:
    """Run a block without changing the global RNG states."""
    saved = rng_state()
    try:
        yield
    finally:
        set_rng_state(saved)


def rescale_states(states: Sequence[dict], rank: int,
                   world_size: int) -> dict:
    """An approximate state for ``rank`` of ``world_size`` from the states
    of a run with another number of ranks.

    Each task continues after ``ceil(all ranks' batches / world_size)``
    batches of the new sharding; the task generator and the RNG states
    start afresh (see :meth:`SIMTTrainLoop.load_simt_states`).
    """
    tasks = list(states[0]['consumed'])
    totals = {t: sum(int(s['consumed'][t]) for s in states) for t in tasks}
    return dict(
        consumed={t: math.ceil(n / world_size)
                  for t, n in totals.items()},
        total_consumed=totals,
        exact=False)
