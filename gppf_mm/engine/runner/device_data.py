# Copyright (c) gppf_mm contributors. All rights reserved.
"""The data side of virtual devices (``SIMTTrainLoop(virtual_devices=K)``):
every device of a process draws its own task from its own generator and
its own batches from its own shard of each task's data, exactly as the rank
with the same index of a run with one device per process would.

Device ``d`` of process ``p`` is device ``g = p * K + d`` of ``W = P * K``:
its task generator is rank ``g``'s of a ``W``-rank run, its samplers hand
out rank ``g``'s share of each task's index stream, its dataloader workers
are seeded as rank ``g``'s, its Gumbel noise is rank ``g``'s, and its RNG
states are its own (swapped in whenever it runs).
"""
import functools
import math
from typing import Any, Dict, Iterator, List, Optional

import torch
from mmengine.dataset import DefaultSampler, InfiniteSampler
from torch.utils.data import DataLoader

from gppf_mm.datasets.task_sampler import TaskSampler
from gppf_mm.engine.model_wrappers.device_step import (
    VirtualDevice,
    raw_rng_state,
)
from gppf_mm.engine.runner.simt_state import (
    gumbel_controllers,
    gumbel_seed,
    preserved_rng_state,
    rng_state,
    set_rng_state,
)
from gppf_mm.engine.runner.task_loaders import (
    prepare_task_loader,
    skip_batches,
)


def shard_sampler(sampler: Any, rank: int, world_size: int,
                  task: str) -> None:
    """Make ``sampler`` hand out rank ``rank`` of ``world_size``'s share."""
    from gppf_mm.datasets.task_sampler import ResumableInfiniteSampler
    if isinstance(sampler, ResumableInfiniteSampler):
        sampler.rank, sampler.world_size = rank, world_size
        sampler.set_position(0)
    elif isinstance(sampler, InfiniteSampler):
        sampler.rank, sampler.world_size = rank, world_size
        sampler.indices = sampler._indices_of_rank()
    elif isinstance(sampler, DefaultSampler):
        sampler.rank, sampler.world_size = rank, world_size
        size = len(sampler.dataset)
        if sampler.round_up:
            sampler.num_samples = math.ceil(size / world_size)
            sampler.total_size = sampler.num_samples * world_size
        else:
            sampler.num_samples = math.ceil((size - rank) / world_size)
            sampler.total_size = size
    else:
        raise ValueError(
            f'task {task!r}: virtual devices shard the data by device, and '
            f'the train sampler {type(sampler).__name__} is not one that '
            'can be sharded (ResumableInfiniteSampler, InfiniteSampler, '
            'DefaultSampler, or a batch sampler over one of them)')


def device_loader(loader: DataLoader, rank: int, world_size: int,
                  task: str) -> DataLoader:
    """A copy of ``loader`` (same dataset object) for device ``rank`` of
    ``world_size``."""
    import copy
    batch_sampler = copy.copy(loader.batch_sampler)
    sampler = copy.copy(getattr(batch_sampler, 'sampler', loader.sampler))
    shard_sampler(sampler, rank, world_size, task)
    batch_sampler.sampler = sampler
    worker_init_fn = loader.worker_init_fn
    if isinstance(worker_init_fn, functools.partial) and \
            'rank' in worker_init_fn.keywords:
        worker_init_fn = functools.partial(
            worker_init_fn.func, *worker_init_fn.args,
            **dict(worker_init_fn.keywords, rank=rank))
    kwargs = dict(
        batch_sampler=batch_sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        worker_init_fn=worker_init_fn,
        persistent_workers=loader.persistent_workers)
    if loader.num_workers > 0:
        kwargs['prefetch_factor'] = loader.prefetch_factor
    return prepare_task_loader(DataLoader(loader.dataset, **kwargs), task)


class DeviceData:
    """The task draws, data streams and RNG states of a process's K
    virtual devices.

    Args:
        loaders (dict): task -> the task's built train dataloader.
        task_weights (dict): task -> sampling weight.
        seed (int): the run's seed.
        sampling (str): ``'simt'`` or ``'per_batch'``.
        rank (int): this process's rank.
        world_size (int): the number of processes.
        k (int): virtual devices per process.
        model (nn.Module): the model (its Gumbel controllers).
        diff_rank_seed (bool): seed every device's RNG differently.
    """

    def __init__(self, loaders: Dict[str, DataLoader],
                 task_weights: Dict[str, float], seed: int, sampling: str,
                 rank: int, world_size: int, k: int, model,
                 diff_rank_seed: bool = False) -> None:
        self.k = k
        self.tasks = list(loaders)
        self.first = rank * k
        self.num_devices = world_size * k
        self.seed = seed
        self.sampling = sampling
        self.diff_rank_seed = diff_rank_seed
        self.indices = [self.first + d for d in range(k)]
        self.samplers = [
            TaskSampler(dict(task_weights), seed, sampling, g,
                        self.num_devices) for g in self.indices
        ]
        self.loaders = [{
            t: device_loader(loader, g, self.num_devices, t)
            for t, loader in loaders.items()
        } for g in self.indices]
        self.consumed = [{t: 0 for t in self.tasks} for _ in range(k)]
        self._iterators: List[Dict[str, Iterator]] = [{} for _ in range(k)]
        self.model = model
        self.devices: List[VirtualDevice] = []

    def start(self) -> None:
        """Give every device its RNG states and noise generators (when the
        run starts, after the runner's seeding)."""
        controllers = gumbel_controllers(self.model)
        self.devices = []
        for g in self.indices:
            rng = raw_rng_state()
            if self.diff_rank_seed:
                with preserved_rng_state():
                    from mmengine.runner import set_random_seed
                    set_random_seed(self.seed + g)
                    rng = raw_rng_state()
            generators = [
                torch.Generator().manual_seed(gumbel_seed(self.seed, g, i))
                for i in range(len(controllers))
            ]
            self.devices.append(VirtualDevice(g, rng, controllers,
                                              generators))

    def next_batches(self) -> List[dict]:
        """Every device's task and batch of this iteration."""
        batches = []
        for d, device in enumerate(self.devices):
            task = self.samplers[d].sample()
            with device.active():
                batches.append(self._next_batch(d, task))
        return batches

    def _next_batch(self, d: int, task: str) -> dict:
        iterator = self._iterators[d].get(task)
        if iterator is None:
            loader = self.loaders[d][task]
            skip_batches(loader, self.consumed[d][task])
            with preserved_rng_state():
                iterator = iter(loader)
            self._iterators[d][task] = iterator
        batch = next(iterator)
        if not isinstance(batch, dict):
            raise TypeError(f'task {task!r}: the train dataloader must yield '
                            'dicts (collate_fn=pseudo_collate), got '
                            f'{type(batch).__name__}')
        self.consumed[d][task] += 1
        batch = dict(batch)
        batch['task'] = task
        return batch

    # -------------------------------------------------------------- state
    def state_dicts(self, iteration: int, version: int) -> List[dict]:
        """One state per device, as a rank of a run with one device per
        process would save it."""
        states = []
        for d, device in enumerate(self.devices):
            with device.active():
                rng = rng_state()
            states.append(dict(
                version=version,
                iter=iteration,
                sampling=self.sampling,
                task_sampler=self.samplers[d].state_dict(),
                consumed=dict(self.consumed[d]),
                rng=rng,
                gumbel=[g.get_state() for g in device.generators]))
        return states

    def load_state_dicts(self, states: List[dict]) -> None:
        """Restore this process's devices from the states of every device
        of the run (any layout with the same number of devices)."""
        if any(self._iterators):
            raise RuntimeError('the SIMT state must be restored before the '
                               'first iteration')
        mine = states[self.first:self.first + self.k]
        for d, state in enumerate(mine):
            self.consumed[d] = {
                t: int(state['consumed'].get(t, 0)) for t in self.tasks
            }
            self.samplers[d].load_state_dict(state['task_sampler'])
            device = self.devices[d]
            with preserved_rng_state():
                set_rng_state(state['rng'])
                device.rng = raw_rng_state()
            gumbel = state.get('gumbel') or []
            if len(gumbel) != len(device.generators):
                raise ValueError(
                    f'the checkpoint holds the noise state of {len(gumbel)} '
                    f'Gumbel controllers, the model has '
                    f'{len(device.generators)}')
            for g, s in zip(device.generators, gumbel):
                g.set_state(s)


def check_virtual_devices(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f'SIMTTrainLoop: virtual_devices must be an int '
                         f'>= 1, got {k!r}')
    return k


def gathered_device_states(everyone: List[dict]) -> Optional[List[dict]]:
    """The device states of every process, in device order."""
    if not everyone or 'states' not in everyone[0]:
        return None
    return [s for e in everyone for s in e['states']]


def fusion_model(model, world_size: int):
    """The model's GradientFusionWrapper, or a wrapper of this process's
    own when the runner did not wrap the model (one process)."""
    from gppf_mm.engine.model_wrappers import GradientFusionWrapper
    if isinstance(model, GradientFusionWrapper):
        return model
    if world_size > 1:
        raise RuntimeError(
            'SIMTTrainLoop: virtual_devices > 1 needs '
            "model_wrapper_cfg=dict(type='GradientFusionWrapper'), got "
            f'{type(model).__name__}')
    return GradientFusionWrapper(model, broadcast_init=False)
