# Copyright (c) gppf_mm contributors. All rights reserved.
"""A lego layer: N units of the same architecture with separate weights."""
from typing import Callable, Optional

import torch
import torch.nn as nn

from .gumbel_controller import Routing


class LegoLayer(nn.Module):
    """Hold ``num_units`` copies of a block and combine them by a routing.

    The units live in ``self.units`` (an ``nn.ModuleList``), so unit ``k`` of
    a layer registered as ``layer1.0`` has the parameter prefix
    ``layer1.0.units.k.``.

    Args:
        build_unit (callable): returns a freshly initialised unit.
        num_units (int): number of units (N >= 1).

    Example:
        >>> layer = LegoLayer(lambda: nn.Conv2d(3, 4, 1), num_units=2)
        >>> x = torch.rand(1, 3, 5, 5)
        >>> layer(x, Routing([1], None)).shape
        torch.Size([1, 4, 5, 5])
    """

    def __init__(self, build_unit: Callable[[], nn.Module],
                 num_units: int) -> None:
        super().__init__()
        if not isinstance(num_units, int) or num_units < 1:
            raise ValueError(f'num_units must be an int >= 1, got '
                             f'{num_units!r}')
        self.num_units = num_units
        self.units = nn.ModuleList([build_unit() for _ in range(num_units)])
        self.bind_unit_slots()

    def bind_unit_slots(self) -> None:
        """Tell unit-aware modules (cross-task BN) which unit they are in.

        Modules that define ``set_unit_slot(index, siblings)`` are matched
        by position across the units (the i-th such module of every unit
        forms one group) so that ranks that compute different units of this
        layer still take part in the same collective calls.
        """
        groups = [[
            m for m in unit.modules() if hasattr(m, 'set_unit_slot')
        ] for unit in self.units]
        if not groups[0]:
            return
        for k, mods in enumerate(groups):
            for pos, mod in enumerate(mods):
                mod.set_unit_slot(k, [g[pos] for g in groups])

    def forward(self, x: torch.Tensor,
                routing: Optional[Routing] = None, *args, **kwargs):
        if routing is None:
            if self.num_units != 1:
                raise RuntimeError(
                    f'a lego layer with {self.num_units} units needs a '
                    'routing; set the task on the backbone first')
            return self.units[0](x, *args, **kwargs)
        if routing.weights is None:
            (k, ) = routing.active
            return self.units[k](x, *args, **kwargs)
        out = None
        for k in routing.active:
            y = self.units[k](x, *args, **kwargs) * routing.weights[k]
            out = y if out is None else out + y
        return out
