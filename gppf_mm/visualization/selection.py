# Copyright (c) gppf_mm contributors. All rights reserved.
"""The task-by-layer selection picture (the paper's Figure 3)."""
from typing import Optional, Sequence

import numpy as np
import torch


def plot_selection(probs: torch.Tensor,
                   tasks: Sequence[str],
                   layers: Sequence[str],
                   out_file: str,
                   title: Optional[str] = None) -> str:
    """Write a PNG heatmap of per-task, per-layer unit selection.

    Every cell shows the unit a task selects in a layer (its argmax) and is
    coloured by that unit, with the colour's strength the selection
    probability.

    Args:
        probs: selection probabilities, shape (T, L, N).
        tasks: T task names. layers: L layer names.
        out_file: where to write the PNG.
        title: optional figure title.

    Returns:
        str: ``out_file``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb

    probs = torch.as_tensor(probs, dtype=torch.float32)
    if probs.dim() != 3:
        raise ValueError(f'probs must be (tasks, layers, units), got shape '
                         f'{tuple(probs.shape)}')
    num_tasks, num_layers, num_units = probs.shape
    if len(tasks) != num_tasks or len(layers) != num_layers:
        raise ValueError(
            f'{len(tasks)} task names and {len(layers)} layer names for '
            f'probabilities of shape {tuple(probs.shape)}')
    best_p, best_k = probs.max(dim=-1)
    palette = [to_rgb(c) for c in plt.get_cmap('tab10').colors]
    image = np.ones((num_tasks, num_layers, 3))
    for t in range(num_tasks):
        for li in range(num_layers):
            colour = np.array(palette[int(best_k[t, li]) % len(palette)])
            # strength 1/N (uniform) -> white, 1 -> full colour
            strength = (float(best_p[t, li]) - 1.0 / num_units) / max(
                1e-6, 1.0 - 1.0 / num_units)
            strength = float(np.clip(strength, 0.15, 1.0))
            image[t, li] = 1.0 - strength * (1.0 - colour)
    fig, ax = plt.subplots(
        figsize=(max(6.0, 0.55 * num_layers + 2), 0.6 * num_tasks + 1.6))
    ax.imshow(image, aspect='auto')
    for t in range(num_tasks):
        for li in range(num_layers):
            ax.text(
                li, t, f'{int(best_k[t, li])}\n{float(best_p[t, li]):.2f}',
                ha='center', va='center', fontsize=7)
    ax.set_xticks(range(num_layers))
    ax.set_xticklabels(layers, rotation=60, ha='right', fontsize=8)
    ax.set_yticks(range(num_tasks))
    ax.set_yticklabels(tasks, fontsize=9)
    ax.set_xlabel('lego layer (cell: selected unit / probability)')
    ax.set_title(title or f'Unit selection per task ({num_units} units)')
    fig.tight_layout()
    fig.savefig(out_file, dpi=120)
    plt.close(fig)
    return out_file


_LETTERS = 'abcdefghijklmnopqrstuvwxyz'
_UNIT_STYLES = ('-', '--', ':', '-.')


def plot_selection_history(history_iters: Sequence[int],
                           history,
                           tasks: Sequence[str],
                           layers: Sequence[str],
                           out_file: str,
                           title: Optional[str] = None,
                           ncols: int = 6) -> str:
    """Write a PNG of the selection probabilities over training (the
    paper's Figure 11): one small plot per lego layer ("(a) Stem", ...),
    one line per task.

    With two units a line is the probability of unit 0 (unit 1 has the
    rest); with more, every unit is a line of its own style in the task's
    colour.

    Args:
        history_iters: K iterations.
        history: probabilities, shape (K, T, L, N) (or K tensors of shape
            (T, L, N)), as :class:`SelectionLoggerHook` saves them.
        tasks: T task names. layers: L layer names.
        out_file: where to write the PNG.
        title: optional figure title.
        ncols: plots per row.

    Returns:
        str: ``out_file``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if isinstance(history, (list, tuple)):
        history = torch.stack([torch.as_tensor(h) for h in history]) \
            if len(history) else torch.zeros(0)
    history = torch.as_tensor(history, dtype=torch.float32)
    if history.dim() != 4:
        raise ValueError(f'history must be (iterations, tasks, layers, '
                         f'units), got shape {tuple(history.shape)}')
    num_iters, num_tasks, num_layers, num_units = history.shape
    if num_iters == 0 or len(history_iters) != num_iters:
        raise ValueError(f'{len(history_iters)} iterations for a history '
                         f'of {num_iters} entries (need at least one)')
    if len(tasks) != num_tasks or len(layers) != num_layers:
        raise ValueError(
            f'{len(tasks)} task names and {len(layers)} layer names for a '
            f'history of shape {tuple(history.shape)}')
    order = np.argsort(np.asarray(history_iters), kind='stable')
    iters = np.asarray(history_iters)[order]
    probs = history[torch.as_tensor(order)].numpy()
    units = [0] if num_units == 2 else list(range(num_units))
    colours = plt.get_cmap('tab10').colors
    ncols = max(1, min(ncols, num_layers))
    nrows = (num_layers + ncols - 1) // ncols
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(2.3 * ncols, 1.9 * nrows + 0.9),
        squeeze=False, sharex=True, sharey=True)
    for li in range(nrows * ncols):
        ax = axes[li // ncols][li % ncols]
        if li >= num_layers:
            ax.axis('off')
            continue
        for t in range(num_tasks):
            for k in units:
                ax.plot(iters, probs[:, t, li, k],
                        color=colours[t % len(colours)],
                        linestyle=_UNIT_STYLES[k % len(_UNIT_STYLES)],
                        linewidth=1.2,
                        marker='.' if num_iters < 3 else None)
        letter = _LETTERS[li] if li < len(_LETTERS) else str(li)
        ax.set_title(f'({letter}) {layers[li]}', fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)
        if li % ncols == 0:
            ax.set_ylabel('p(unit 0)' if num_units == 2 else 'p(unit)',
                          fontsize=7)
        if li + ncols >= num_layers:
            ax.set_xlabel('iteration', fontsize=7)
            ax.tick_params(labelbottom=True)
    handles = [
        Line2D([], [], color=colours[t % len(colours)], label=task)
        for t, task in enumerate(tasks)
    ]
    if num_units > 2:
        handles += [
            Line2D([], [], color='black',
                   linestyle=_UNIT_STYLES[k % len(_UNIT_STYLES)],
                   label=f'unit {k}') for k in units
        ]
    fig.legend(handles=handles, loc='lower center',
               ncol=min(len(handles), 6), fontsize=8, frameon=False)
    fig.suptitle(title or f'Unit selection over training '
                 f'({num_units} units)', fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    fig.savefig(out_file, dpi=120)
    plt.close(fig)
    return out_file
