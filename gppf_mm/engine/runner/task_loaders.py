# Copyright (c) gppf_mm contributors. All rights reserved.
"""A SIMT task's train dataloader, endless and resumable.

Two kinds of train dataloaders are handled:

- a plain batch sampler over an infinite sampler (``ResumableInfiniteSampler``
  or MMEngine's ``InfiniteSampler``): used as is; on resume the sampler is
  moved on by ``batches * batch_size`` indices.
- anything else (``DefaultSampler``, MMDetection's
  ``AspectRatioBatchSampler``, ...): the batch sampler is wrapped in an
  endless one that starts a new epoch (``set_epoch``) whenever it runs out;
  on resume the batches consumed are replayed as indices only.
"""
import inspect
import itertools
from typing import Any, Iterator, List, Optional

from mmengine.dataset import InfiniteSampler
from torch.utils.data import BatchSampler, DataLoader


class EndlessBatchSampler:
    """Batches of indices from a batch sampler, without end.

    When the wrapped batch sampler runs out, the next epoch starts (its
    ``set_epoch`` -- or its sampler's -- is called with the epoch number).
    :meth:`skip` replays batches as indices only, to resume.

    Args:
        batch_sampler: any deterministic batch sampler.
        task (str): task name, for error messages.
    """

    def __init__(self, batch_sampler, task: str) -> None:
        self.batch_sampler = batch_sampler
        self.sampler = getattr(batch_sampler, 'sampler', None)
        self.batch_size = getattr(batch_sampler, 'batch_size', None)
        self.task = task
        self.epoch = 0
        self._skip = 0
        self._stream: Optional[Iterator[List[int]]] = None

    def skip(self, num_batches: int) -> None:
        """Start after ``num_batches`` batches (before the first iter)."""
        if self._stream is not None:
            raise RuntimeError(f'task {self.task!r}: cannot skip batches of '
                               'a batch stream that has started')
        self._skip = int(num_batches)

    def _set_epoch(self, epoch: int) -> None:
        for obj in (self.batch_sampler, self.sampler):
            if hasattr(obj, 'set_epoch'):
                obj.set_epoch(epoch)
                return

    def _batches(self) -> Iterator[List[int]]:
        self._set_epoch(self.epoch)
        while True:
            empty = True
            for batch in self.batch_sampler:
                empty = False
                yield batch
            if empty:
                raise RuntimeError(f'task {self.task!r}: the train '
                                   'dataloader yields no batch')
            self.epoch += 1
            self._set_epoch(self.epoch)

    def __iter__(self) -> Iterator[List[int]]:
        if self._stream is None:
            self._stream = self._batches()
            for _ in range(self._skip):
                next(self._stream)
        return self._stream

    def __len__(self) -> int:
        return len(self.batch_sampler)


def _clone_with_batch_sampler(loader: DataLoader,
                              batch_sampler) -> DataLoader:
    """The same DataLoader with another batch sampler."""
    skip = {
        'self', 'dataset', 'batch_size', 'shuffle', 'sampler',
        'batch_sampler', 'drop_last'
    }
    kwargs = {
        name: getattr(loader, name)
        for name in inspect.signature(DataLoader.__init__).parameters
        if name not in skip and hasattr(loader, name)
    }
    return DataLoader(loader.dataset, batch_sampler=batch_sampler, **kwargs)


def _advances_in_place(loader: DataLoader) -> bool:
    """A plain batch sampler over an infinite sampler: moving the sampler
    on moves the batches on."""
    return (type(loader.batch_sampler) is BatchSampler
            and (hasattr(loader.sampler, 'set_position')
                 or isinstance(loader.sampler, InfiniteSampler)))


def prepare_task_loader(loader: DataLoader, task: str) -> DataLoader:
    """Make a task's train dataloader endless and resumable."""
    if not isinstance(loader, DataLoader):
        raise TypeError(f'task {task!r}: train dataloader must be a config '
                        f'dict or a DataLoader, got {type(loader).__name__}')
    if loader.batch_sampler is None:
        raise ValueError(f'task {task!r}: the train dataloader must batch '
                         '(batch_size=None is not supported)')
    if _advances_in_place(loader) or isinstance(loader.batch_sampler,
                                                EndlessBatchSampler):
        return loader
    return _clone_with_batch_sampler(
        loader, EndlessBatchSampler(loader.batch_sampler, task))


def skip_batches(loader: DataLoader, num_batches: int) -> None:
    """Move a prepared loader on by ``num_batches`` before its first
    iterator is created, generating indices only."""
    if num_batches == 0:
        return
    if isinstance(loader.batch_sampler, EndlessBatchSampler):
        loader.batch_sampler.skip(num_batches)
        return
    num = num_batches * loader.batch_size
    sampler = loader.sampler
    if hasattr(sampler, 'set_position'):
        sampler.set_position(num)
    else:  # MMEngine's InfiniteSampler keeps one stream across iter()
        next(itertools.islice(sampler.indices, num, num), None)


DATALOADER_KEYS = ('dataset', 'batch_size', 'sampler', 'num_workers')


def check_task_dict(loaders: Any, loop_name: str, split: str) -> None:
    """Raise a clear error unless ``loaders`` is a non-empty dict of task
    name -> dataloader (config or object)."""
    if not isinstance(loaders, dict) or not loaders:
        raise ValueError(f'{loop_name} needs a dict of task name -> {split} '
                         f'dataloader, got {type(loaders).__name__}')
    looks_single = [k for k in DATALOADER_KEYS if k in loaders]
    if looks_single:
        raise ValueError(
            f'{loop_name} needs a dict of task name -> {split} dataloader, '
            f'got one dataloader config (keys {looks_single}); write '
            f'{split}_dataloader=dict(task_name=dict(dataset=..., ...))')


def capped_loaders(dataloader: dict, max_workers: int, logger) -> dict:
    """The dataloader configs with at most ``max_workers`` worker
    processes on this rank over all tasks (each task's workers start the
    first time the rank draws it, and stay if persistent)."""
    from gppf_mm.engine.runner.simt_state import cap_workers
    workers = cap_workers(dataloader, max_workers)
    out = dict(dataloader)
    changed = []
    for task, n in workers.items():
        cfg = dict(out[task])
        if int(cfg.get('num_workers', 0)) != n:
            changed.append(f'{task} {cfg.get("num_workers", 0)} -> {n}')
            cfg['num_workers'] = n
            if n == 0:
                cfg['persistent_workers'] = False
                cfg.pop('prefetch_factor', None)
        out[task] = cfg
    if changed:
        logger.info(f'SIMTTrainLoop: max_workers={max_workers} per rank; '
                    f'dataloader workers {", ".join(changed)}')
    return out
