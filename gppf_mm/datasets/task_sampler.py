# Copyright (c) gppf_mm contributors. All rights reserved.
"""Which task a rank runs in an iteration (SIMT), and a resumable sampler.

The rank arithmetic lives in pure functions (:func:`sampler_seed`,
:func:`rank_stream_start`, :func:`rank_index_stream`) so that it can be
checked without processes.
"""
import numbers
from typing import Dict, Iterator, List, Optional, Sized

import torch
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from gppf_mm.registry import DATA_SAMPLERS

SAMPLING_MODES = ('simt', 'per_batch')


def normalise_task_weights(task_weights: Dict[str, float]) -> Dict[str, float]:
    """Check sampling weights and scale them to sum to one.

    Args:
        task_weights (dict): task name -> weight (a number >= 0).

    Returns:
        dict: task name -> probability, in the order of ``task_weights``.

    Raises:
        ValueError: the dict is empty, a weight is not a number >= 0 (the
            message names the task) or the weights sum to zero.
    """
    if not isinstance(task_weights, dict) or not task_weights:
        raise ValueError('task_weights must be a non-empty dict of task name '
                         f'-> weight, got {task_weights!r}')
    for name, w in task_weights.items():
        if (not isinstance(w, numbers.Real) or isinstance(w, bool)
                or not w >= 0 or w == float('inf')):
            raise ValueError(f'task {name!r}: sampling weight must be a '
                             f'finite number >= 0, got {w!r}')
    total = float(sum(task_weights.values()))
    if not total > 0:
        raise ValueError('task sampling weights must sum to a positive '
                         f'number, got {task_weights}')
    return {name: float(w) / total for name, w in task_weights.items()}


def check_rank(rank: int, world_size: Optional[int] = None) -> None:
    """Raise a clear error unless ``0 <= rank < world_size`` (``rank >= 0``
    when ``world_size`` is None)."""
    if world_size is not None and not (isinstance(world_size, int)
                                       and world_size >= 1):
        raise ValueError(f'world_size must be an int >= 1, got {world_size!r}')
    if not (isinstance(rank, int) and rank >= 0):
        raise ValueError(f'rank must be an int >= 0, got {rank!r}')
    if world_size is not None and rank >= world_size:
        raise ValueError(f'rank must be < world_size ({world_size}), got '
                         f'{rank}')


def sampler_seed(seed: int, rank: int, mode: str) -> int:
    """Seed of a rank's task generator.

    ``seed + rank`` in SIMT mode (every rank draws its own task),
    ``seed`` in per-batch mode (every rank draws the same task).
    """
    if mode not in SAMPLING_MODES:
        raise ValueError(f'sampling must be one of {SAMPLING_MODES}, got '
                         f'{mode!r}')
    return seed + rank if mode == 'simt' else seed


class TaskSampler:
    """Draw one task per iteration from the normalised weights.

    Each sampler owns a ``torch.Generator``, so the draws neither use nor
    disturb the global random state.

    Args:
        task_weights (dict): task name -> sampling weight (>= 0).
        seed (int): base seed. Defaults to 0.
        mode (str): ``'simt'`` (the paper's method: each rank its own
            generator, seeded ``seed + rank``) or ``'per_batch'`` (every
            rank seeded ``seed``: all ranks run the same task in an
            iteration, the paper's unstable baseline). Defaults to
            ``'simt'``.
        rank (int): this process's rank. Defaults to 0.
        world_size (int, optional): number of processes, only used to check
            ``rank``. Defaults to None.

    Example:
        >>> s = TaskSampler(dict(coco=2.5, in21k=4.0), seed=0)
        >>> s.probs
        {'coco': 0.38461538461538464, 'in21k': 0.6153846153846154}
        >>> s.sample() in ('coco', 'in21k')
        True
    """

    def __init__(self,
                 task_weights: Dict[str, float],
                 seed: int = 0,
                 mode: str = 'simt',
                 rank: int = 0,
                 world_size: Optional[int] = None) -> None:
        check_rank(rank, world_size)
        if not isinstance(seed, int):
            raise ValueError(f'seed must be an int, got {seed!r}')
        self.probs = normalise_task_weights(task_weights)
        self.tasks: List[str] = list(self.probs)
        self.mode = mode
        self.seed = seed
        self.rank = rank
        self._weights = torch.tensor([self.probs[t] for t in self.tasks],
                                     dtype=torch.float64)
        self.generator = torch.Generator().manual_seed(
            sampler_seed(seed, rank, mode))

    def sample(self) -> str:
        """The task of the next iteration."""
        index = torch.multinomial(self._weights, 1, generator=self.generator)
        return self.tasks[int(index)]

    def state_dict(self) -> dict:
        """Generator state and task list (tensors, strings only)."""
        return dict(
            generator=self.generator.get_state(),
            tasks=list(self.tasks),
            mode=self.mode)

    def load_state_dict(self, state: dict) -> None:
        """Continue the draws of a saved sampler.

        Raises:
            ValueError: the saved sampler had other tasks or another mode.
        """
        if list(state['tasks']) != self.tasks:
            raise ValueError(f'the saved task sampler has tasks '
                             f'{list(state["tasks"])}, this one has '
                             f'{self.tasks}')
        if state.get('mode', self.mode) != self.mode:
            raise ValueError(f'the saved task sampler used mode '
                             f'{state["mode"]!r}, this one uses '
                             f'{self.mode!r}')
        self.generator.set_state(state['generator'])


def rank_stream_start(rank: int, world_size: int, position: int) -> int:
    """Position in the global index stream of a rank's ``position``-th index.

    The ranks take the global stream round robin: rank ``r`` gets global
    positions ``r, r + world_size, r + 2 * world_size, ...``.
    """
    check_rank(rank, world_size)
    if position < 0:
        raise ValueError(f'position must be >= 0, got {position}')
    return rank + position * world_size


def rank_index_stream(size: int, seed: int, shuffle: bool, start: int,
                      step: int) -> Iterator[int]:
    """Dataset indices at global positions ``start, start + step, ...``.

    The global stream is the concatenation of epochs, each a
    ``torch.randperm(size)`` drawn from one generator seeded ``seed`` (or
    ``0..size-1`` without shuffling) -- the order of MMEngine's
    ``InfiniteSampler``. Epochs before ``start`` only advance the generator;
    no index of them is yielded.
    """
    if size <= 0:
        raise ValueError(f'dataset size must be > 0, got {size}')
    g = torch.Generator().manual_seed(seed)
    epoch_begin = 0
    pos = start
    while True:
        order = (
            torch.randperm(size, generator=g)
            if shuffle else torch.arange(size))
        if pos < epoch_begin + size:
            chunk = order[pos - epoch_begin::step].tolist()
            yield from chunk
            pos += len(chunk) * step
        epoch_begin += size


@DATA_SAMPLERS.register_module()
class ResumableInfiniteSampler(Sampler):
    """MMEngine's ``InfiniteSampler`` (the same index order for the same
    seed) that can continue from a position without touching the data.

    Each rank gets every ``world_size``-th index of one infinite stream of
    shuffled epochs. :meth:`set_position` (or :meth:`load_state_dict`)
    moves this rank's stream on by ``n`` indices; only the permutations of
    the skipped epochs are drawn, nothing is decoded.

    The sampler keeps one stream across ``iter()`` calls, as MMEngine's
    does. ``position`` counts the indices handed out so far, which with a
    DataLoader includes the batches it prefetched.

    Args:
        dataset (Sized): the dataset.
        shuffle (bool): shuffle every epoch. Defaults to True.
        seed (int, optional): seed of the shuffling, the same on every rank;
            None draws one and broadcasts it. Defaults to None.
    """

    def __init__(self,
                 dataset: Sized,
                 shuffle: bool = True,
                 seed: Optional[int] = None) -> None:
        rank, world_size = get_dist_info()
        self.rank = rank
        self.world_size = world_size
        self.dataset = dataset
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.shuffle = shuffle
        self.size = len(dataset)
        if self.size == 0:
            raise ValueError('ResumableInfiniteSampler got an empty dataset '
                             f'({type(dataset).__name__})')
        self.set_position(0)

    def set_position(self, num_samples: int) -> None:
        """Continue after the first ``num_samples`` indices of this rank."""
        self.position = int(num_samples)
        start = rank_stream_start(self.rank, self.world_size, self.position)
        self.indices = rank_index_stream(self.size, self.seed, self.shuffle,
                                         start, self.world_size)

    def __iter__(self) -> Iterator[int]:
        for index in self.indices:
            self.position += 1
            yield index

    def __len__(self) -> int:
        return self.size

    def set_epoch(self, epoch: int) -> None:
        """No-op: iteration-based training has no epochs."""

    def state_dict(self) -> dict:
        """Seed, sharding and the number of indices handed out."""
        return dict(
            seed=self.seed,
            shuffle=self.shuffle,
            size=self.size,
            rank=self.rank,
            world_size=self.world_size,
            position=self.position)

    def load_state_dict(self, state: dict) -> None:
        """Continue a saved stream.

        Raises:
            ValueError: the saved stream is another one (seed, shuffling,
                dataset size or number of ranks differ).
        """
        for key in ('seed', 'shuffle', 'size', 'world_size'):
            if state[key] != getattr(self, key):
                raise ValueError(
                    f'cannot continue the saved sampler: its {key} is '
                    f'{state[key]!r}, this sampler has '
                    f'{getattr(self, key)!r}')
        self.set_position(state['position'])
