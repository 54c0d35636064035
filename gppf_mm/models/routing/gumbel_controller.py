# Copyright (c) gppf_mm contributors. All rights reserved.
"""The per-task Gumbel-Softmax controller of the paper's Section 3.2."""
from typing import Dict, List, NamedTuple, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from gppf_mm.registry import MODELS

ROUTING_MODES = ('soft', 'hard', 'argmax')


class Routing(NamedTuple):
    """How one lego layer combines its units in one forward call.

    Attributes:
        active (list[int]): indices of the units that are computed.
        weights (Tensor | None): weight of every unit, shape ``(N,)``, with
            gradient to the controller logits. ``None`` means the single
            active unit's output is used as it is (argmax / static).
    """
    active: List[int]
    weights: Optional[torch.Tensor]


@MODELS.register_module()
class GumbelController(BaseModule):
    """Per-task, per-layer unit selection with Gumbel-Softmax (Eq. 1).

    For every task ``t`` and lego layer ``l`` the controller holds the
    learnable selection logits ``log p^t_l`` (one separate parameter per task,
    so a task's logits only get gradients on the ranks that run that task).

    Modes (training):

    - ``'soft'``: ``u = softmax((log p + G) / tau)``; every unit is computed
      and the layer output is ``sum_k u[k] * unit_k(x)``.
    - ``'hard'``: the straight-through one-hot sample
      ``u_hard - stop_gradient(u) + u``; only the sampled unit is computed,
      its output is multiplied by the (value 1) weight so gradients still
      reach the logits.
    - ``'argmax'``: only the unit with the largest probability, no weight.

    In eval mode the controller always routes by argmax.

    Args:
        tasks (Sequence[str]): task names.
        num_layers (int): number of lego layers.
        num_units (int): units per lego layer (N >= 1).
        mode (str): training routing mode, one of ``ROUTING_MODES``.
        tau (float): initial Gumbel-Softmax temperature.
        init_cfg (dict, optional): MMEngine init config.

    Example:
        >>> ctrl = GumbelController(['coco', 'ade'], num_layers=3, num_units=2)
        >>> [r.active for r in ctrl.route('coco')]
        [[0, 1], [0, 1], [0, 1]]
        >>> ctrl.probabilities().shape
        torch.Size([2, 3, 2])
    """

    def __init__(self,
                 tasks: Sequence[str],
                 num_layers: int,
                 num_units: int,
                 mode: str = 'soft',
                 tau: float = 5.0,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        tasks = list(tasks)
        if not tasks:
            raise ValueError('GumbelController needs at least one task name')
        if len(set(tasks)) != len(tasks):
            raise ValueError(f'task names must be unique, got {tasks}')
        if num_units < 1:
            raise ValueError(f'num_units must be >= 1, got {num_units}')
        if num_layers < 1:
            raise ValueError(f'num_layers must be >= 1, got {num_layers}')
        self.tasks = tasks
        self.num_layers = num_layers
        self.num_units = num_units
        self.mode = mode
        self.tau = tau
        self.logits = nn.ParameterDict({
            t: nn.Parameter(torch.zeros(num_layers, num_units))
            for t in tasks
        })
        self._generator: Optional[torch.Generator] = None

    # ------------------------------------------------------------ settings
    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        if mode not in ROUTING_MODES:
            raise ValueError(
                f'routing mode must be one of {ROUTING_MODES}, got {mode!r}')
        self._mode = mode

    @property
    def tau(self) -> float:
        return self._tau

    @tau.setter
    def tau(self, tau: float) -> None:
        if not tau > 0:
            raise ValueError(f'temperature tau must be > 0, got {tau}')
        self._tau = float(tau)

    def set_temperature(self, tau: float) -> None:
        """Set the Gumbel-Softmax temperature (used by the tau hook)."""
        self.tau = tau

    def manual_seed(self, seed: int) -> None:
        """Draw the Gumbel noise from a private generator seeded by ``seed``.

        Without it the noise comes from torch's global RNG.
        """
        self._generator = torch.Generator().manual_seed(seed)

    def check_task(self, task: Optional[str]) -> str:
        """Return ``task`` or raise a clear error if it is unknown."""
        if task not in self.logits:
            raise KeyError(
                f'unknown task {task!r}; the controller knows the tasks '
                f'{self.tasks}')
        return task

    # ------------------------------------------------------------- routing
    def _gumbel(self, shape: torch.Size, ref: torch.Tensor) -> torch.Tensor:
        u = torch.rand(shape, generator=self._generator, dtype=torch.float32)
        u = u.clamp_(min=torch.finfo(torch.float32).tiny, max=1.0)
        return -torch.log(-torch.log(u)).to(device=ref.device, dtype=ref.dtype)

    def route(self, task: str) -> List[Routing]:
        """Sample the routing of every lego layer for one forward call."""
        logits = self.logits[self.check_task(task)]
        mode = self.mode if self.training else 'argmax'
        if mode == 'argmax' or self.num_units == 1:
            best = logits.detach().argmax(dim=-1).tolist()
            return [Routing([k], None) for k in best]
        y = torch.softmax(
            (logits + self._gumbel(logits.shape, logits)) / self.tau, dim=-1)
        if mode == 'soft':
            everything = list(range(self.num_units))
            return [Routing(everything, y[i]) for i in range(self.num_layers)]
        index = y.detach().argmax(dim=-1)
        y_hard = torch.zeros_like(y).scatter_(-1, index[:, None], 1.0)
        y = y_hard - y.detach() + y
        return [
            Routing([int(index[i])], y[i]) for i in range(self.num_layers)
        ]

    def path(self, task: str) -> List[int]:
        """The argmax unit of every layer for ``task``."""
        return self.logits[self.check_task(task)].detach().argmax(
            dim=-1).tolist()

    # ------------------------------------------------------------ read-out
    def probabilities(self) -> torch.Tensor:
        """Selection probabilities ``softmax(log p)``, shape (T, L, N)."""
        return torch.stack([
            torch.softmax(self.logits[t].detach().float(), dim=-1)
            for t in self.tasks
        ])

    def probability_table(self,
                          layer_names: Optional[Sequence[str]] = None,
                          digits: int = 2) -> str:
        """A task x layer text table of the most likely unit and its
        probability (the data behind the paper's Figure 3)."""
        probs = self.probabilities()
        names = list(layer_names or
                     [f'L{i}' for i in range(self.num_layers)])
        width = max(6, digits + 5, max(len(n) for n in names) + 1)
        name_w = max(len(t) for t in self.tasks) + 1
        header = ' ' * name_w + ''.join(f'{n:>{width}}' for n in names)
        lines = [header]
        for ti, task in enumerate(self.tasks):
            cells = []
            for li in range(self.num_layers):
                p, k = probs[ti, li].max(dim=-1)
                cells.append(f'{int(k)}:{float(p):.{digits}f}'.rjust(width))
            lines.append(f'{task:<{name_w}}' + ''.join(cells))
        return '\n'.join(lines)

    def state_summary(self) -> Dict[str, List[List[float]]]:
        """Probabilities as plain lists, for logging."""
        probs = self.probabilities()
        return {t: probs[i].tolist() for i, t in enumerate(self.tasks)}
