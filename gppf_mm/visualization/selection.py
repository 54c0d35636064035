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
