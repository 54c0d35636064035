# Copyright (c) gppf_mm contributors. All rights reserved.
"""Which task a rank runs in an iteration (SIMT), and resumable samplers."""
import itertools
import numbers
from typing import Dict, Iterator, List, Optional, Sized

import torch
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from gppf_mm.registry import DATA_SAMPLERS

SAMPLING_MODES = ('simt', 'per_batch')


def normalise_task_weights(task_weights: Dict[str, float]) -> Dict[str, float]:
    """Check sampling weights and scale them to sum to one."""
    if not isinstance(task_weights, dict) or not task_weights:
        raise ValueError('task_weights must be a non-empty dict of task name '
                         f'-> weight, got {task_weights!r}')
    for name, w in task_weights.items():
        if not isinstance(w, numbers.Real) or w < 0:
            raise ValueError(f'task {name!r}: sampling weight must be a '
                             f'number >= 0, got {w!r}')
    total = float(sum(task_weights.values()))
    if not total > 0:
        raise ValueError('task sampling weights must sum to a positive '
                         f'number, got {task_weights}')
    return {name: float(w) / total for name, w in task_weights.items()}


def sampler_seed(seed: int, rank: int, mode: str) -> int:
    """``seed + rank`` in SIMT mode (every rank draws its own task),
    ``seed`` in per-batch mode (all ranks draw the same task)."""
    if mode not in SAMPLING_MODES:
        raise ValueError(f'sampling must be one of {SAMPLING_MODES}, got '
                         f'{mode!r}')
    return seed + rank if mode == 'simt' else seed


class TaskSampler:
    """Draw one task per iteration from the normalised weights.

    Args:
        task_weights (dict): task name -> sampling weight (>= 0).
        seed (int): base seed.
        mode (str): ``'simt'`` (each rank its own generator, seeded
            ``seed + rank``: the paper's method) or ``'per_batch'`` (all
            ranks the same task each iteration: the paper's unstable
            baseline).
        rank (int): this process's rank.

    Example:
        >>> s = TaskSampler(dict(coco=2.5, in21k=4.0), seed=0)
        >>> s.sample() in ('coco', 'in21k')
        True
    """

    def __init__(self,
                 task_weights: Dict[str, float],
                 seed: int = 0,
                 mode: str = 'simt',
                 rank: int = 0) -> None:
        self.probs = normalise_task_weights(task_weights)
        self.tasks: List[str] = list(self.probs)
        self.mode = mode
        self._weights = torch.tensor([self.probs[t] for t in self.tasks],
                                     dtype=torch.float64)
        self.generator = torch.Generator().manual_seed(
            sampler_seed(seed, rank, mode))

    def sample(self) -> str:
        index = torch.multinomial(self._weights, 1, generator=self.generator)
        return self.tasks[int(index)]

    def state_dict(self) -> dict:
        return dict(generator=self.generator.get_state(), tasks=self.tasks)

    def load_state_dict(self, state: dict) -> None:
        if list(state['tasks']) != self.tasks:
            raise ValueError(f'the saved task sampler has tasks '
                             f'{state["tasks"]}, this run has {self.tasks}')
        self.generator.set_state(state['generator'])


@DATA_SAMPLERS.register_module()
class ResumableInfiniteSampler(Sampler):
    """MMEngine's ``InfiniteSampler`` (same index order for the same seed)
    that can continue from a position without touching the data.

    ``set_position(n)`` skips the first ``n`` indices of this rank's stream;
    only indices are generated, nothing is decoded.
    """

    def __init__(self,
                 dataset: Sized,
                 shuffle: bool = True,
                 seed: Optional[int] = None) -> None:
        rank, world_size = get_dist_info()
        self.rank = rank
        self.world_size = world_size
        self.dataset = dataset
        self.seed = sync_random_seed() if seed is None else seed
        self.shuffle = shuffle
        self.size = len(dataset)
        if self.size == 0:
            raise ValueError('ResumableInfiniteSampler got an empty dataset')
        self.position = 0
        self.indices = self._indices_of_rank()

    def _infinite_indices(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self.seed)
        while True:
            if self.shuffle:
                yield from torch.randperm(self.size, generator=g).tolist()
            else:
                yield from torch.arange(self.size).tolist()

    def _indices_of_rank(self) -> Iterator[int]:
        yield from itertools.islice(self._infinite_indices(), self.rank,
                                    None, self.world_size)

    def set_position(self, num_samples: int) -> None:
        """Continue after ``num_samples`` indices of this rank's stream."""
        self.position = int(num_samples)
        self.indices = itertools.islice(self._indices_of_rank(),
                                        self.position, None)

    def __iter__(self) -> Iterator[int]:
        yield from self.indices

    def __len__(self) -> int:
        return self.size

    def set_epoch(self, epoch: int) -> None:
        """Not supported in iter-based training; kept for hooks."""
