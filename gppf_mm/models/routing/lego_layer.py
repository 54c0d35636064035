# Copyright (c) gppf_mm contributors. All rights reserved.
"""A lego layer: N units of the same architecture with separate weights."""
import functools
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp

from gppf_mm.models.layers.lockstep import active_lockstep

from .gumbel_controller import Routing


class _Gate(torch.autograd.Function):
    """A unit's output times its routing weight.

    ``hard=True``: the gate of a hard (one-hot) routing. Forward returns the
    unit output as it is (the sampled one-hot weight has the value 1);
    backward passes the output gradient to the unit unchanged and gives the
    weight its straight-through gradient ``<grad, y>``, without an extra
    activation-sized tensor kept for backward. ``hard=False``: ``y *
    weight`` of a soft mixture.

    The weight's gradient is reduced in float32 and returned in the
    weight's dtype. Under fp16 autocast ``y`` and its gradient are fp16 and
    the gradient carries the loss scale: summed in fp16 over a layer's
    millions of elements, ``<grad, y>`` exceeds fp16's largest value
    (65504) long before any element does, and the scaler then skips step
    after step. In float32 the result is the same as before.
    """

    @staticmethod
    def forward(ctx, y: torch.Tensor, weight: torch.Tensor,
                hard: bool) -> torch.Tensor:
        ctx.hard = hard
        ctx.weight_dtype = weight.dtype
        if hard:
            ctx.save_for_backward(y)
            return y.view_as(y)
        ctx.save_for_backward(y, weight)
        return y * weight.to(y.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        y = ctx.saved_tensors[0]
        grad_y = grad if ctx.hard else grad * ctx.saved_tensors[1].to(
            grad.dtype)
        grad_weight = None
        if ctx.needs_input_grad[1]:
            grad_weight = (grad.float() * y.float()).sum().to(
                ctx.weight_dtype)
        return grad_y, grad_weight, None


class LegoLayer(nn.Module):
    """Hold ``num_units`` copies of a block and combine them by a routing.

    The units live in ``self.units`` (an ``nn.ModuleList``), so unit ``k`` of
    a layer registered as ``layer1.0`` has the parameter prefix
    ``layer1.0.units.k.``.

    Routings (see :class:`Routing`):

    - ``weights is None``: the single active unit's output (argmax / eval /
      static network), exactly the plain block.
    - one active unit with weights (hard): the unit's output, with the
      straight-through gradient to ``weights[k]``.
    - several active units (soft): ``sum_k weights[k] * unit_k(x)``.

    Args:
        build_unit (callable): returns a freshly initialised unit.
        num_units (int): number of units (N >= 1).
        with_cp (bool): recompute the layer (units and their combination) in
            backward instead of keeping its activations, when the input
            requires grad (as ``with_cp`` of MMDetection's blocks).

    Example:
        >>> layer = LegoLayer(lambda: nn.Conv2d(3, 4, 1), num_units=2)
        >>> x = torch.rand(1, 3, 5, 5)
        >>> layer(x, Routing([1], None)).shape
        torch.Size([1, 4, 5, 5])
    """

    def __init__(self,
                 build_unit: Callable[[], nn.Module],
                 num_units: int,
                 with_cp: bool = False) -> None:
        super().__init__()
        if not isinstance(num_units, int) or num_units < 1:
            raise ValueError(f'num_units must be an int >= 1, got '
                             f'{num_units!r}')
        self.num_units = num_units
        self.with_cp = with_cp
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

    def init_weights(self) -> None:
        """Run every unit's own initialisation.

        MMEngine's ``BaseModule.init_weights`` only descends into children
        that have an ``init_weights`` method; without this one the units'
        own ``init_cfg`` (e.g. the zero-initialised last norm of a residual
        block, ``zero_init_residual``) would silently never run. As in the
        plain backbone, the parent's ``init_cfg`` is applied first and the
        units' after it.
        """
        for unit in self.units:
            if hasattr(unit, 'init_weights') and not getattr(
                    unit, 'is_init', False):
                unit.init_weights()

    def copy_first_unit(self) -> None:
        """Make every unit a copy of unit 0 (weights and buffers)."""
        state = self.units[0].state_dict()
        for unit in self.units[1:]:
            unit.load_state_dict(state)

    def _combine(self, x: torch.Tensor, weights: Optional[torch.Tensor],
                 active, *args, **kwargs) -> torch.Tensor:
        if weights is None:
            (k, ) = active
            return self.units[k](x, *args, **kwargs)
        if len(active) == 1:
            (k, ) = active
            return _Gate.apply(self.units[k](x, *args, **kwargs),
                               weights[k], True)
        out = None
        for k in active:
            y = _Gate.apply(self.units[k](x, *args, **kwargs), weights[k],
                            False)
            out = y if out is None else out + y
        return out

    def forward(self, x: torch.Tensor,
                routing: Optional[Routing] = None, *args, **kwargs):
        if routing is None:
            if self.num_units != 1:
                raise RuntimeError(
                    f'a lego layer with {self.num_units} units needs a '
                    'routing; set the task on the backbone first')
            routing = Routing([0], None)
        if self.with_cp and x.requires_grad and torch.is_grad_enabled():
            lockstep = active_lockstep()
            if lockstep is not None:
                # a virtual device: the layer is recomputed for all the
                # process's devices together, so that its cross-task norms
                # pool them in backward as in forward
                return lockstep.arrive(self, (x, routing, args, kwargs))
            run = functools.partial(self._combine, **kwargs)
            return cp.checkpoint(
                run, x, routing.weights, tuple(routing.active), *args,
                use_reentrant=True)
        return self._combine(x, routing.weights, routing.active, *args,
                             **kwargs)
