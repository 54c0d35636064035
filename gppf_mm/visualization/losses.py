# Copyright (c) gppf_mm contributors. All rights reserved.
"""Per-task training-loss curves of a SIMT run, read from MMEngine's
``vis_data/scalars.json``."""
import json
import math
from typing import Dict, List, Optional, Sequence, Tuple

Curve = Tuple[List[int], List[float]]


def read_task_losses(scalars_file: str,
                     tasks: Sequence[str]) -> Dict[str, Curve]:
    """Each task's training loss at every logged iteration.

    The SIMT loop logs ``'{task}.<name>'`` for the loss terms of the ranks
    that ran ``task`` (MMEngine's window mean at each logging step); a
    task's loss is the sum of its terms whose name contains ``'loss'``,
    as in ``parse_losses``. Records without training losses (validation)
    and iterations where a task reported nothing are skipped.

    Returns:
        dict: ``task -> (iterations, losses)``.
    """
    curves: Dict[str, Curve] = {t: ([], []) for t in tasks}
    with open(scalars_file) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            record = json.loads(line)
            step = record.get('iter', record.get('step'))
            if step is None or 'loss' not in record:
                continue
            for task in tasks:
                prefix = task + '.'
                terms = [
                    float(v) for k, v in record.items()
                    if k.startswith(prefix) and 'loss' in k[len(prefix):]
                ]
                if terms:
                    curves[task][0].append(int(step))
                    curves[task][1].append(sum(terms))
    return curves


def plot_task_losses(curves: Dict[str, Curve],
                     out_file: str,
                     chance: Optional[Dict[str, float]] = None,
                     title: Optional[str] = None,
                     ncols: int = 5) -> str:
    """Write a PNG with one panel per task: its training loss over the
    iterations, with a dashed line at the chance level where one is given
    (``chance[task]``, e.g. ``ln(classes)`` for a classifier) and a dotted
    line at the first logged value otherwise.

    Returns:
        str: ``out_file``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    tasks = [t for t, (iters, _) in curves.items() if iters]
    if not tasks:
        raise ValueError('no task has a logged training loss')
    chance = chance or {}
    ncols = max(1, min(ncols, len(tasks)))
    nrows = math.ceil(len(tasks) / ncols)
    fig, axes = plt.subplots(nrows, ncols,
                             figsize=(3.0 * ncols, 2.4 * nrows + 0.6),
                             squeeze=False)
    colours = plt.get_cmap('tab10').colors
    for i, task in enumerate(tasks):
        ax = axes[i // ncols][i % ncols]
        iters, losses = curves[task]
        ax.plot(iters, losses, color=colours[i % len(colours)],
                linewidth=1.3)
        if task in chance:
            ax.axhline(chance[task], color='black', linestyle='--',
                       linewidth=0.9, label=f'chance {chance[task]:.2f}')
        else:
            ax.axhline(losses[0], color='grey', linestyle=':',
                       linewidth=0.9, label=f'first logged {losses[0]:.2f}')
        ax.set_title(task, fontsize=9)
        ax.set_xlabel('iteration', fontsize=7)
        ax.set_ylim(bottom=0)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    for j in range(len(tasks), nrows * ncols):
        axes[j // ncols][j % ncols].axis('off')
    axes[0][0].set_ylabel('training loss', fontsize=8)
    fig.suptitle(title or 'Training loss per task', fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(out_file, dpi=120)
    plt.close(fig)
    return out_file
