# Copyright (c) gppf_mm contributors. All rights reserved.
"""Single Iteration Multiple Tasks: every rank runs its own task per
iteration (paper, Section 3.2)."""
import bisect
import random
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.distributed as dist
from mmengine.dist import get_dist_info
from mmengine.runner import BaseLoop
from mmengine.runner.utils import calc_dynamic_intervals
from torch.utils.data import DataLoader

from gppf_mm.datasets.task_sampler import TaskSampler
from gppf_mm.registry import LOOPS


def rng_state() -> dict:
    """Global RNG states as tensors / lists (loadable with weights_only)."""
    np_state = np.random.get_state()
    state = dict(
        torch=torch.get_rng_state(),
        numpy=dict(
            key=torch.from_numpy(np_state[1].astype(np.int64)),
            pos=int(np_state[2]),
            has_gauss=int(np_state[3]),
            cached=float(np_state[4])),
        python=[list(x) if isinstance(x, tuple) else x
                for x in random.getstate()])
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state['torch'])
    n = state['numpy']
    np.random.set_state(('MT19937', n['key'].numpy().astype(np.uint32),
                         n['pos'], n['has_gauss'], n['cached']))
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def _batch_size(loader: DataLoader) -> int:
    if loader.batch_size is not None:
        return loader.batch_size
    return loader.batch_sampler.batch_size


def _skip_samples(sampler, num: int) -> None:
    """Move an infinite sampler ``num`` indices on, decoding nothing."""
    if num == 0:
        return
    if hasattr(sampler, 'set_position'):
        sampler.set_position(num)
    elif hasattr(sampler, 'indices'):  # mmengine's InfiniteSampler
        for _ in range(num):
            next(sampler.indices)
    else:
        raise TypeError(
            f'cannot resume a {type(sampler).__name__} at a sample position; '
            'use sampler=dict(type="ResumableInfiniteSampler")')


@LOOPS.register_module()
class SIMTTrainLoop(BaseLoop):
    """Iteration-based training where each rank samples one task per
    iteration and runs that task's algorithm on one batch of its data.

    Dataloaders are built per task and their iterators are created lazily:
    a task a rank never samples decodes nothing there, and a task decodes no
    more than it consumes plus the loader's prefetch.

    Args:
        runner: the runner.
        dataloader (dict): task name -> dataloader (config or object).
        max_iters (int): total iterations.
        task_weights (dict): task name -> sampling weight.
        sampling (str): ``'simt'`` (per rank, the paper's method) or
            ``'per_batch'`` (one task for all ranks per iteration).
        seed (int, optional): task-sampling seed; defaults to the
            runner's seed.
        val_begin (int): first iteration that may validate.
        val_interval (int): validation interval.
        dynamic_intervals (list[tuple], optional): as MMEngine's loops.
        gather_logs (bool): merge every rank's task losses into the logs of
            rank 0 (one small all-gather per iteration).
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
                 gather_logs: bool = True) -> None:
        self._runner = runner
        if not isinstance(dataloader, dict) or not dataloader:
            raise ValueError('SIMTTrainLoop needs a dict of task name -> '
                             'dataloader')
        missing = set(task_weights) ^ set(dataloader)
        if missing:
            raise ValueError(f'tasks {sorted(missing)} have a dataloader or '
                             'a sampling weight but not both')
        if not isinstance(max_iters, int) or max_iters <= 0:
            raise ValueError(f'max_iters must be a positive int, got '
                             f'{max_iters!r}')
        diff_rank_seed = runner._randomness_cfg.get('diff_rank_seed', False)
        self.dataloaders: Dict[str, DataLoader] = {}
        for name, loader in dataloader.items():
            if isinstance(loader, dict):
                loader = runner.build_dataloader(
                    loader, seed=runner.seed, diff_rank_seed=diff_rank_seed)
            self.dataloaders[name] = loader
        # MMEngine's hooks look for `train_loop.dataloader`
        self.dataloader = next(iter(self.dataloaders.values()))
        self._max_iters = max_iters
        self._max_epochs = 1
        self._epoch = 0
        self._iter = 0
        self.val_begin = val_begin
        self.val_interval = val_interval
        self.stop_training = False
        self.gather_logs = gather_logs
        self.rank, self.world_size = get_dist_info()
        self.sampling = sampling
        seed = runner.seed if seed is None else seed
        self.task_sampler = TaskSampler(task_weights, seed, sampling,
                                        self.rank)
        self.tasks = list(self.dataloaders)
        self.consumed = {t: 0 for t in self.tasks}  # batches, this rank
        self.total_consumed = {t: 0 for t in self.tasks}  # all ranks
        self._iterators: Dict[str, Any] = {}
        self._start_positions = {t: 0 for t in self.tasks}
        self._pending_state: Optional[dict] = None
        self.gathered_states: Optional[List[dict]] = None
        self.dynamic_milestones, self.dynamic_intervals = \
            calc_dynamic_intervals(self.val_interval, dynamic_intervals)
        for name, loader in self.dataloaders.items():
            meta = getattr(loader.dataset, 'metainfo', None)
            if meta is None:
                runner.logger.warning(f'task {name}: dataset has no metainfo')

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
        """One batch of ``task``'s data, with the ``'task'`` key set."""
        if task not in self._iterators:
            loader = self.dataloaders[task]
            _skip_samples(loader.sampler,
                          self._start_positions[task] * _batch_size(loader))
            self._iterators[task] = iter(loader)
        try:
            batch = next(self._iterators[task])
        except StopIteration:  # a finite sampler: start another pass
            self._iterators[task] = iter(self.dataloaders[task])
            batch = next(self._iterators[task])
        self.consumed[task] += 1
        if not isinstance(batch, dict):
            raise TypeError(f'task {task}: the dataloader must yield dicts '
                            f'(pseudo_collate), got {type(batch).__name__}')
        batch = dict(batch)
        batch['task'] = task
        return batch

    # ----------------------------------------------------------------- run
    def run(self) -> torch.nn.Module:
        self.runner.call_hook('before_train')
        if self._pending_state is not None:
            self._apply_state(self._pending_state)
            self._pending_state = None
        self.runner.call_hook('before_train_epoch')
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            task = self.task_sampler.sample()
            data_batch = self.next_batch(task)
            self.run_iter(task, data_batch)
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None
                    and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0
                         or self._iter == self._max_iters)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model

    def run_iter(self, task: str, data_batch: dict) -> None:
        self.runner.call_hook(
            'before_train_iter', batch_idx=self._iter, data_batch=data_batch)
        outputs = self.runner.model.train_step(
            data_batch, optim_wrapper=self.runner.optim_wrapper)
        outputs = self._merge_ranks(task, outputs)
        self.runner.call_hook(
            'after_train_iter',
            batch_idx=self._iter,
            data_batch=data_batch,
            outputs=outputs)
        self._iter += 1

    def _merge_ranks(self, task: str, outputs: Dict[str, Any]) -> dict:
        """Every rank's log vars and resume state, merged for logging and
        checkpoints (one all-gather)."""
        scalars = {
            k: float(v.item() if torch.is_tensor(v) else v)
            for k, v in (outputs or {}).items()
        }
        local = dict(task=task, logs=scalars, state=self.state_dict())
        if self.world_size > 1 and self.gather_logs:
            everyone: List[Any] = [None] * self.world_size
            dist.all_gather_object(everyone, local)
        else:
            everyone = [local]
        self.gathered_states = [e['state'] for e in everyone]
        for e in everyone:
            self.total_consumed[e['task']] += 1
        if len(everyone) == 1 and not self.gather_logs:
            return outputs
        merged: Dict[str, List[float]] = {}
        for e in everyone:
            for k, v in e['logs'].items():
                merged.setdefault(k, []).append(v)
        out = {k: sum(v) / len(v) for k, v in merged.items()}
        for t in self.tasks:
            out[f'{t}.iters'] = float(self.total_consumed[t])
        return out

    def _decide_current_val_interval(self) -> None:
        step = bisect.bisect(self.dynamic_milestones, (self._iter + 1))
        self.val_interval = self.dynamic_intervals[step - 1]

    # -------------------------------------------------------------- resume
    def state_dict(self) -> dict:
        """This rank's state at the iteration boundary."""
        return dict(
            task_sampler=self.task_sampler.state_dict(),
            consumed=dict(self.consumed),
            total_consumed=dict(self.total_consumed),
            rng=rng_state(),
            sampling=self.sampling)

    def load_state_dict(self, state: dict) -> None:
        """Restore before :meth:`run` starts (applied after the runner's own
        seeding, which would overwrite the RNG states)."""
        self._pending_state = state

    def _apply_state(self, state: dict) -> None:
        if state.get('sampling', self.sampling) != self.sampling:
            raise ValueError(f'the checkpoint was trained with sampling='
                             f'{state["sampling"]!r}, this run uses '
                             f'{self.sampling!r}')
        self.task_sampler.load_state_dict(state['task_sampler'])
        unknown = set(state['consumed']) - set(self.tasks)
        if unknown:
            raise ValueError(f'the checkpoint has tasks {sorted(unknown)} '
                             f'that this config lacks ({self.tasks})')
        for t in self.tasks:
            self.consumed[t] = int(state['consumed'].get(t, 0))
            self.total_consumed[t] = int(state['total_consumed'].get(t, 0))
            self._start_positions[t] = self.consumed[t]
        self._iterators.clear()
        set_rng_state(state['rng'])
