# Copyright (c) gppf_mm contributors. All rights reserved.
"""Per-task result tables in the units of the paper's Table 1."""
import csv
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.config import Config

# evaluator type -> (column name, metric key under '<task>/', scale)
_COLUMNS = {
    'CocoMetric': (('box AP', 'coco/bbox_mAP', 100.0),
                   ('mask AP', 'coco/segm_mAP', 100.0)),
    'IoUMetric': (('mIoU', 'mIoU', 1.0), ),
    'Accuracy': (('top-1', 'accuracy/top1', 1.0), ),
}


def _evaluator_type(evaluator) -> str:
    if isinstance(evaluator, (list, tuple)):
        evaluator = evaluator[0]
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        return _evaluator_type(evaluator['metrics'])
    name = str(evaluator.get('type', '')) if isinstance(evaluator,
                                                        dict) else ''
    return name.split('.')[-1]


def task_columns(cfg: Config) -> Dict[str, List[Tuple[str, str, float]]]:
    """For each task of a GPPF config, the headline metrics of its test
    evaluator: COCO box and mask AP (percent), mIoU, top-1 accuracy."""
    columns = {}
    for name, task in cfg.tasks.items():
        evaluator = task.get('test_evaluator', task.get('val_evaluator'))
        kind = _evaluator_type(evaluator) if evaluator else ''
        if kind == 'CocoMetric':
            metrics = evaluator.get('metric', 'bbox')
            metrics = [metrics] if isinstance(metrics, str) else metrics
            columns[name] = [
                c for c in _COLUMNS[kind]
                if c[1].split('/')[1].split('_')[0] in metrics
            ]
        elif kind in _COLUMNS:
            columns[name] = list(_COLUMNS[kind])
    return columns


def headline(metrics: Dict[str, float], task: str,
             columns: Sequence[Tuple[str, str, float]]) -> Dict[str, float]:
    """The headline values of one task from ``tools/test.py`` metrics.

    MMDet's COCO metric reports nothing when a model detects nothing at
    all; such an AP is 0 by definition and is reported as 0.0.
    """
    values = {}
    for column, key, scale in columns:
        value = metrics.get(f'{task}/{key}')
        if value is None and key.startswith('coco/') and not any(
                k.startswith(f'{task}/coco/') for k in metrics):
            value = 0.0
        if value is not None:
            values[column] = float(value) * scale
    return values


def markdown_table(header: Sequence[str],
                   rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table; floats with one decimal, None as '-'."""

    def fmt(v):
        if v is None:
            return '-'
        if isinstance(v, float):
            return f'{v:.1f}'
        return str(v)

    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '|'.join(['---'] * len(header)) + '|']
    lines += ['| ' + ' | '.join(fmt(v) for v in row) + ' |' for row in rows]
    return '\n'.join(lines)


def write_csv(path: str, header: Sequence[str],
              rows: Sequence[Sequence[object]]) -> str:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            writer.writerow(['' if v is None else
                             (f'{v:.2f}' if isinstance(v, float) else v)
                             for v in row])
    return path


def task_results_table(metrics: Dict[str, float],
                       columns: Dict[str, List[Tuple[str, str, float]]],
                       tasks: Optional[Sequence[str]] = None
                       ) -> Tuple[List[str], List[List[object]]]:
    """One row per task: task, metric, value (for a single run)."""
    rows = []
    for task in tasks or columns:
        for column, value in headline(metrics, task,
                                      columns[task]).items():
            rows.append([task, column, value])
    return ['task', 'metric', 'value'], rows
