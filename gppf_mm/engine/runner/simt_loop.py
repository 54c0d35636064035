# Copyright (c) gppf_mm contributors. All rights reserved.
"""Single Iteration Multiple Tasks: every rank runs its own task in each
iteration (paper, Section 3.2).

Data. Each task has its own dataloader. Its iterator is created the first
time this rank draws the task, so a task a rank never draws decodes nothing
there, and a task decodes what it consumes plus its loader's prefetch.

Resume. At the end of every iteration the ranks exchange their state (task
generator, batches consumed per task, global RNG states); a checkpoint holds
the list (see :class:`~gppf_mm.engine.hooks.SIMTStateHook`). On resume every
rank restores its entry and moves each task's index stream on by what it
consumed -- generating indices only, decoding nothing -- so the sequence of
(task, sample indices) continues exactly as without the interruption.

Task dataloaders: :mod:`~gppf_mm.engine.runner.task_loaders`; the rank
state: :mod:`~gppf_mm.engine.runner.simt_state`.
"""
import bisect
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.distributed as dist
from mmengine.dist import get_dist_info
from mmengine.runner import BaseLoop
from mmengine.runner.utils import calc_dynamic_intervals
from torch.utils.data import DataLoader

from gppf_mm.datasets.task_sampler import (
    SAMPLING_MODES,
    TaskSampler,
    sampler_seed,
)
from gppf_mm.engine.model_wrappers.device_step import VirtualBatch
from gppf_mm.engine.runner.device_data import (
    DeviceData,
    check_virtual_devices,
    fusion_model,
    gathered_device_states,
)
from gppf_mm.engine.runner.simt_state import (
    checkpoint_due,
    gumbel_state,
    load_gumbel_state,
    preserved_rng_state,
    rescale_states,
    rng_state,
    seed_gumbel_noise,
    set_rng_state,
)
from gppf_mm.engine.runner.task_loaders import (
    capped_loaders,
    check_task_dict,
    prepare_task_loader,
    skip_batches,
)
from gppf_mm.registry import LOOPS

STATE_VERSION = 1


def _scalar(value: Any) -> Optional[float]:
    if torch.is_tensor(value):
        return float(value.item()) if value.numel() == 1 else None
    if isinstance(value, (int, float, np.number)):
        return float(value)
    return None


@LOOPS.register_module()
class SIMTTrainLoop(BaseLoop):
    """Iteration-based training in which every rank draws one task per
    iteration and trains that task's algorithm on one batch of its data
    (``train_cfg = dict(type='SIMTTrainLoop', ...)``).

    Args:
        runner (Runner): the runner.
        dataloader (dict): task name -> dataloader (config or DataLoader).
        max_iters (int): total iterations.
        task_weights (dict): task name -> sampling weight (>= 0), the same
            tasks as ``dataloader``.
        sampling (str): ``'simt'`` (each rank its own task, the paper's
            method) or ``'per_batch'`` (one task for all ranks per
            iteration, the paper's baseline). Defaults to ``'simt'``.
        seed (int, optional): seed of the task draws (rank ``r`` uses
            ``seed + r`` in SIMT mode). Defaults to the runner's seed
            (without its rank offset under ``diff_rank_seed``).
        val_begin (int): first iteration that may validate. Defaults to 1.
        val_interval (int): validation interval. Defaults to 1000.
        dynamic_intervals (list[tuple], optional): ``(milestone,
            interval)`` pairs, as in MMEngine's loops.
        max_workers (int, optional): dataloader worker processes of one
            rank over all its tasks; the tasks' ``num_workers`` are scaled
            down to fit (each rank may draw any task, and a task's workers
            start the first time the rank draws it). Defaults to no cap.
            With virtual devices each device gets ``max_workers // K``.
        virtual_devices (int): K, the virtual devices of every process
            (the paper's Section 3.2). Each device draws its own task and
            batch in every iteration, exactly as rank ``p * K + d`` of a run
            with ``P * K`` processes would; the shared backbone runs the K
            devices together, cross-task BN pools them, and every gradient
            is the mean over the devices that used it
            (:mod:`gppf_mm.engine.model_wrappers.device_step`). Defaults to
            1 (one task per process and iteration).

    Every iteration the ranks exchange (task, log variables) in one
    ``all_gather_object``, and their SIMT states too at the iterations that
    write a checkpoint: the outputs given to the ``after_train_iter``
    hooks -- and so the logs of rank 0 -- hold the mean of each log
    variable over the ranks that reported it (``'{task}.loss_x'`` over the
    ranks of that task, ``'loss'`` over all) and ``'{task}.iters'``, the
    batches of each task trained so far by all ranks together.
    """

    def __init__(self,
                 runner,
                 dataloader: Dict[str, Union[DataLoader, dict]],
                 max_iters: int,
                 task_weights: Dict[str, float],
                 sampling: str = 'simt',
                 seed: Optional[int] = None,
                 val_begin: int = 1,
                 val_interval: int = 1000,
                 dynamic_intervals: Optional[List[Tuple[int, int]]] = None,
                 max_workers: Optional[int] = None,
                 virtual_devices: int = 1) -> None:
        self._runner = runner
        self.virtual_devices = check_virtual_devices(virtual_devices)
        check_task_dict(dataloader, 'SIMTTrainLoop', 'train')
        if not isinstance(task_weights, dict):
            raise ValueError('SIMTTrainLoop needs task_weights, a dict of '
                             'task name -> sampling weight')
        for task in dataloader:
            if task not in task_weights:
                raise ValueError(f'task {task!r} has a train dataloader but '
                                 'no sampling weight in task_weights')
        for task in task_weights:
            if task not in dataloader:
                raise ValueError(f'task {task!r} has a sampling weight but '
                                 'no train dataloader')
        if not isinstance(max_iters, int) or max_iters <= 0:
            raise ValueError(f'max_iters must be a positive int, got '
                             f'{max_iters!r}')
        if sampling not in SAMPLING_MODES:
            raise ValueError(f'sampling must be one of {SAMPLING_MODES}, '
                             f'got {sampling!r}')
        self.rank, self.world_size = get_dist_info()
        self.tasks: List[str] = list(dataloader)
        self.task_weights = {t: float(task_weights[t]) for t in self.tasks}
        self.sampling = sampling
        if seed is None:
            seed = runner.seed
            if runner._randomness_cfg.get('diff_rank_seed', False):
                seed -= self.rank
        self.seed = int(seed)
        self.task_sampler = TaskSampler({t: task_weights[t]
                                         for t in self.tasks}, self.seed,
                                        sampling, self.rank, self.world_size)

        diff_rank_seed = runner._randomness_cfg.get('diff_rank_seed', False)
        if max_workers is not None:
            dataloader = capped_loaders(
                dataloader, max_workers // self.virtual_devices,
                runner.logger)
        self.dataloaders: Dict[str, DataLoader] = {}
        for task, loader in dataloader.items():
            if isinstance(loader, dict):
                loader = runner.build_dataloader(
                    loader, seed=runner.seed, diff_rank_seed=diff_rank_seed)
            self.dataloaders[task] = prepare_task_loader(loader, task)
        # MMEngine's hooks and runner look at `train_loop.dataloader`
        self.dataloader = self.dataloaders[self.tasks[0]]

        self._max_iters = max_iters
        self._max_epochs = 1
        self._epoch = 0
        self._iter = 0
        self.val_begin = val_begin
        self.val_interval = val_interval
        self.stop_training = False
        self.dynamic_milestones, self.dynamic_intervals = \
            calc_dynamic_intervals(self.val_interval, dynamic_intervals)

        self.consumed = {t: 0 for t in self.tasks}  # this rank
        self.total_consumed = {t: 0 for t in self.tasks}  # all ranks
        self._iterators: Dict[str, Iterator] = {}
        self._pending_state: Optional[dict] = None
        self._pending_states: Optional[Tuple[List[dict], bool]] = None
        self.gathered_states: Optional[List[dict]] = None
        self._ensure_state_hook()
        self.device_data: Optional[DeviceData] = None
        self._device_wrapper = None
        if self.virtual_devices > 1:
            self.device_data = DeviceData(
                self.dataloaders, self.task_weights, self.seed, sampling,
                self.rank, self.world_size, self.virtual_devices,
                runner.model, diff_rank_seed)
            runner.logger.info(
                f'SIMTTrainLoop: {self.virtual_devices} virtual devices per '
                f'process, devices {self.device_data.first}-'
                f'{self.device_data.first + self.virtual_devices - 1} of '
                f'{self.device_data.num_devices}')

    def _ensure_state_hook(self) -> None:
        from gppf_mm.engine.hooks.simt_state_hook import SIMTStateHook
        if not any(isinstance(h, SIMTStateHook) for h in self.runner.hooks):
            self.runner.register_hook(SIMTStateHook())
            self.runner.logger.info(
                'SIMTTrainLoop: registered SIMTStateHook so that checkpoints '
                'hold the per-rank SIMT state')

    # ---------------------------------------------------------- properties
    @property
    def max_epochs(self) -> int:
        return self._max_epochs

    @property
    def max_iters(self) -> int:
        return self._max_iters

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def iter(self) -> int:
        return self._iter

    # ---------------------------------------------------------------- data
    def next_batch(self, task: str) -> dict:
        """One batch of ``task``'s data with the ``'task'`` key set; the
        task's iterator is created on first use."""
        iterator = self._iterators.get(task)
        if iterator is None:
            loader = self.dataloaders[task]
            skip_batches(loader, self.consumed[task])
            # creating a DataLoader iterator draws its base seed from the
            # global torch RNG: keep that out of the training RNG streams
            with preserved_rng_state():
                iterator = iter(loader)
            self._iterators[task] = iterator
        batch = next(iterator)
        if not isinstance(batch, dict):
            raise TypeError(f'task {task!r}: the train dataloader must yield '
                            'dicts (collate_fn=pseudo_collate), got '
                            f'{type(batch).__name__}')
        self.consumed[task] += 1
        batch = dict(batch)
        batch['task'] = task
        return batch

    # ----------------------------------------------------------------- run
    def run(self) -> torch.nn.Module:
        """Train until ``max_iters``."""
        self.runner.call_hook('before_train')
        seed_gumbel_noise(self.runner.model, self.seed, self.rank)
        if self.device_data is not None:
            self.device_data.start()
        self._restore()
        self.runner.call_hook('before_train_epoch')
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            if self.device_data is not None:
                batches = self.device_data.next_batches()
                self.run_iter(None, VirtualBatch(
                    batches=batches, devices=self.device_data.devices))
            else:
                task = self.task_sampler.sample()
                data_batch = self.next_batch(task)
                self.run_iter(task, data_batch)
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None
                    and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0
                         or self._iter == self._max_iters)):
                # validation must not shift the training RNG streams, or a
                # resumed run (which skips it) would diverge
                with preserved_rng_state():
                    self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model

    def run_iter(self, task: str, data_batch: dict) -> None:
        """Train ``task`` on one batch and call the iteration hooks."""
        self.runner.call_hook(
            'before_train_iter', batch_idx=self._iter, data_batch=data_batch)
        if isinstance(data_batch, VirtualBatch):
            outputs = self._fusion_model().train_step(
                data_batch, optim_wrapper=self.runner.optim_wrapper)
            outputs = self._exchange(data_batch.tasks, outputs)
        else:
            outputs = self.runner.model.train_step(
                data_batch, optim_wrapper=self.runner.optim_wrapper)
            outputs = self._exchange(task, outputs)
        self.runner.call_hook(
            'after_train_iter',
            batch_idx=self._iter,
            data_batch=data_batch,
            outputs=outputs)
        self._iter += 1

    def _fusion_model(self):
        if self._device_wrapper is None:
            self._device_wrapper = fusion_model(self.runner.model,
                                                self.world_size)
        return self._device_wrapper

    def _exchange(self, task: Union[str, List[str]],
                  outputs: Union[None, dict, List[dict]]) -> dict:
        """Share (task, log variables, state) of every rank -- of every
        virtual device when ``task`` is a list -- with every rank; return
        the merged log variables."""
        devices = isinstance(task, list)
        tasks = task if devices else [task]
        logs = outputs if devices else [outputs]
        local = dict(entries=[])
        for t, out in zip(tasks, logs):
            scalars = {}
            for key, value in (out or {}).items():
                v = _scalar(value)
                if v is not None:
                    scalars[key] = v
            local['entries'].append(dict(task=t, logs=scalars))
        # the per-rank states (RNGs, generators) are only needed by the
        # checkpoint written at the end of this iteration, if any
        due = checkpoint_due(self.runner)
        if due:
            if devices:
                local['states'] = self.device_data.state_dicts(
                    self._iter + 1, STATE_VERSION)
            else:
                local['state'] = self.state_dict()
        if self.world_size > 1:
            everyone: List[Any] = [None] * self.world_size
            dist.all_gather_object(everyone, local)
        else:
            everyone = [local]
        if due:
            self.gathered_states = gathered_device_states(everyone) or [
                e['state'] for e in everyone
            ]
        entries = [x for e in everyone for x in e['entries']]
        for e in entries:
            self.total_consumed[e['task']] += 1
        merged: Dict[str, List[float]] = {}
        for e in entries:
            for key, value in e['logs'].items():
                merged.setdefault(key, []).append(value)
        out = {key: sum(v) / len(v) for key, v in merged.items()}
        for t in self.tasks:
            out[f'{t}.iters'] = float(self.total_consumed[t])
        return out

    def _decide_current_val_interval(self) -> None:
        step = bisect.bisect(self.dynamic_milestones, (self._iter + 1))
        self.val_interval = self.dynamic_intervals[step - 1]

    # -------------------------------------------------------------- resume
    def state_dict(self) -> dict:
        """This rank's state at the end of the current iteration."""
        return dict(
            version=STATE_VERSION,
            iter=self._iter + 1,
            sampling=self.sampling,
            task_sampler=self.task_sampler.state_dict(),
            consumed=dict(self.consumed),
            rng=rng_state(),
            gumbel=gumbel_state(self.runner.model))

    def load_state_dict(self, state: dict) -> None:
        """Restore this rank's state when :meth:`run` starts (after the
        runner's own seeding on resume, which would overwrite the RNG)."""
        self._pending_state = dict(state)

    def load_simt_states(self,
                         states: Sequence[dict],
                         allow_world_size_change: bool = False) -> None:
        """Restore from the states of all ranks of a checkpoint.

        The states are applied when :meth:`run` starts, and only if the
        run resumes (its iteration is not 0): a checkpoint loaded with
        ``load_from`` and ``resume=False`` gives weights only.

        Args:
            states (list[dict]): one state per rank of the saved run.
            allow_world_size_change (bool): with another number of ranks,
                continue approximately (each task after its share of the
                batches consumed; fresh task draws and RNG states) instead
                of raising. Defaults to False.
        """
        self._pending_states = (list(states), allow_world_size_change)

    def _state_of_rank(self, states: List[dict],
                       allow_world_size_change: bool) -> dict:
        if self.device_data is not None:
            n = self.device_data.num_devices
            if len(states) != n:
                raise ValueError(
                    f'the checkpoint holds the SIMT state of {len(states)} '
                    f'devices but this run has {n} ({self.world_size} '
                    f'processes x {self.virtual_devices} virtual devices); '
                    'resume with a layout of as many devices')
            return dict(devices=states)
        if len(states) == self.world_size:
            state = dict(states[self.rank])
            state['total_consumed'] = {
                t: sum(int(s['consumed'].get(t, 0)) for s in states)
                for t in states[0]['consumed']
            }
            return state
        if not allow_world_size_change:
            raise ValueError(
                f'the checkpoint holds the SIMT state of {len(states)} '
                f'ranks but this run has {self.world_size}; resume with '
                f'{len(states)} processes, or set '
                'SIMTStateHook(allow_world_size_change=True) to continue '
                'approximately')
        self.runner.logger.warning(
            f'the checkpoint holds the SIMT state of {len(states)} ranks, '
            f'this run has {self.world_size}: the tasks continue '
            'approximately (not as an uninterrupted run would)')
        return rescale_states(states, self.rank, self.world_size)

    def _restore(self) -> None:
        """Apply a state given by :meth:`load_simt_states` or
        :meth:`load_state_dict`."""
        if self._pending_states is not None:
            states, allow = self._pending_states
            self._pending_states = None
            if self._iter == 0:
                self.runner.logger.info(
                    'SIMTTrainLoop: the checkpoint was loaded without '
                    'resuming; its SIMT state is not used')
                return
            self._pending_state = self._state_of_rank(states, allow)
        if self._pending_state is not None:
            state, self._pending_state = self._pending_state, None
            self._apply_state(state)

    def _apply_state(self, state: dict) -> None:
        if self.device_data is not None:
            if 'devices' not in state:
                raise ValueError('with virtual devices the SIMT state is '
                                 'restored from every device\'s state '
                                 '(SIMTStateHook)')
            states = state['devices']
            self._check_state(states[0])
            self.device_data.load_state_dicts(states)
            for t in self.tasks:
                self.total_consumed[t] = sum(
                    int(s['consumed'].get(t, 0)) for s in states)
            return
        self._check_state(state)
        if self._iterators:
            raise RuntimeError('the SIMT state must be restored before the '
                               'first iteration')
        for t in self.tasks:
            self.consumed[t] = int(state['consumed'].get(t, 0))
            self.total_consumed[t] = int(
                state.get('total_consumed', {}).get(t, 0))
        if state.get('exact', True):
            self.task_sampler.load_state_dict(state['task_sampler'])
            set_rng_state(state['rng'])
            if state.get('gumbel'):
                load_gumbel_state(self.runner.model, state['gumbel'])
        else:
            # fresh draws that do not repeat the first iterations'
            self.task_sampler.generator.manual_seed(
                sampler_seed(self.seed + 1000003 * self._iter, self.rank,
                             self.sampling))
            seed_gumbel_noise(self.runner.model,
                              self.seed + 1000003 * self._iter, self.rank)

    def _check_state(self, state: dict) -> None:
        if state.get('sampling', self.sampling) != self.sampling:
            raise ValueError(f'the checkpoint was trained with sampling='
                             f'{state["sampling"]!r}, this run uses '
                             f'{self.sampling!r}')
        unknown = sorted(set(state['consumed']) - set(self.tasks))
        if unknown:
            raise ValueError(f'the checkpoint has tasks {unknown} that this '
                             f'run lacks ({self.tasks})')
        if 'iter' in state and int(state['iter']) != self._iter:
            raise ValueError(
                f'the SIMT state of the checkpoint belongs to iteration '
                f'{state["iter"]} but the run resumes at {self._iter}')
