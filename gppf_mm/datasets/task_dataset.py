# Copyright (c) gppf_mm contributors. All rights reserved.
"""A task's training dataset whose loading errors name the task, the
dataset and the file, with optional skipping of bad samples."""
from typing import Any, Union

from mmengine.logging import print_log
from torch.utils.data import Dataset

from gppf_mm.registry import DATASETS

PATH_KEYS = ('img_path', 'seg_map_path', 'ann_path', 'depth_path',
             'file_name', 'filename')


class TaskDataError(RuntimeError):
    """A sample of a task's dataset could not be loaded."""


@DATASETS.register_module()
class TaskDataset(Dataset):
    """Wrap a task's training dataset (:func:`expand_tasks` does it for
    every task).

    A sample whose loading or pipeline fails (a corrupt image, a malformed
    annotation) raises :class:`TaskDataError` naming the task, the dataset,
    the sample index and its files. With ``skip_bad_samples=K`` (the task
    config's field of that name) up to ``K`` such samples per data process
    are replaced by the next index instead, each one logged with the
    running count; the replacement is deterministic, so resume stays exact.
    The other attributes (``metainfo``, ``get_data_info`` ...) are the
    wrapped dataset's.

    Args:
        dataset (Dataset | dict): the dataset or its config.
        task (str): the task name.
        skip_bad_samples (int): how many bad samples to replace before
            raising. Defaults to 0.
    """

    def __init__(self, dataset: Union[Dataset, dict], task: str,
                 skip_bad_samples: int = 0) -> None:
        if isinstance(dataset, dict):
            dataset = DATASETS.build(dataset)
        if isinstance(skip_bad_samples, bool):
            skip_bad_samples = 10**9 if skip_bad_samples else 0
        if not isinstance(skip_bad_samples, int) or skip_bad_samples < 0:
            raise ValueError(f'task {task!r}: skip_bad_samples must be a '
                             f'bool or an int >= 0, got {skip_bad_samples!r}')
        self.dataset = dataset
        self.task = task
        self.max_skips = skip_bad_samples
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        if name in ('dataset', '__setstate__', '__getstate__'):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def describe(self, index: int) -> str:
        """The files of sample ``index``, as far as the dataset tells."""
        try:
            info = self.dataset.get_data_info(index)
        except Exception:  # noqa: B902 - a description must not fail
            return f'sample {index}'
        files = [f'{k}={info[k]}' for k in PATH_KEYS
                 if isinstance(info, dict) and info.get(k)]
        return f'sample {index}' + (f" ({', '.join(files)})" if files else '')

    def __getitem__(self, index: int) -> Any:
        tried = index
        for _ in range(len(self)):
            try:
                return self.dataset[tried]
            except Exception as e:  # noqa: B902 - named and re-raised
                what = (f'task {self.task!r}, dataset '
                        f'{type(self.dataset).__name__}: '
                        f'{self.describe(tried)} could not be loaded: '
                        f'{type(e).__name__}: {e}')
                if self.skipped >= self.max_skips:
                    raise TaskDataError(
                        what + ('' if self.max_skips else
                                ' (set the task\'s skip_bad_samples to '
                                'replace such samples)')) from e
                self.skipped += 1
                print_log(f'{what}; replaced by the next sample '
                          f'({self.skipped} skipped in this process)',
                          logger='current', level=30)
                tried = (tried + 1) % len(self)
        raise TaskDataError(f'task {self.task!r}: no sample could be loaded')
