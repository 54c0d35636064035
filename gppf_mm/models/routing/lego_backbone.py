# Copyright (c) gppf_mm contributors. All rights reserved.
"""What every lego backbone shares: task selection, routing, read-out and
path extraction."""
from collections import OrderedDict
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from gppf_mm.utils.checkpoint import check_state_match

from .gumbel_controller import GumbelController, Routing
from .lego_layer import LegoLayer

# how the units of a lego layer start: each from its own random
# initialisation, or all as copies of unit 0
UNIT_INITS = ('independent', 'copy')


def collapse_lego_state_dict(state_dict: Dict[str, torch.Tensor],
                             layers: Sequence[Tuple[str, str]],
                             path: Sequence[int],
                             drop_prefixes: Sequence[str] = ('controller.', )
                             ) -> 'OrderedDict[str, torch.Tensor]':
    """Keep one unit per lego layer and rename its keys to a plain layout.

    Args:
        state_dict: the lego backbone's state dict (keys relative to it).
        layers: ``(lego_prefix, plain_prefix)`` per lego layer, in layer
            order; the keys ``{lego_prefix}.units.{k}.{rest}`` of the chosen
            unit ``k`` become ``{plain_prefix}.{rest}`` (or ``{rest}`` when
            ``plain_prefix`` is empty).
        path: the chosen unit of every layer.
        drop_prefixes: keys to leave out (the controller's logits).

    Returns:
        OrderedDict: the plain state dict.
    """
    if len(path) != len(layers):
        raise ValueError(f'the path has {len(path)} entries but the backbone '
                         f'has {len(layers)} lego layers')
    lookup = {lego: (plain, int(k)) for (lego, plain), k in zip(layers, path)}
    out = OrderedDict()
    for key, value in state_dict.items():
        if any(key.startswith(p) for p in drop_prefixes):
            continue
        head, sep, tail = key.partition('.units.')
        if sep and head in lookup:
            plain, chosen = lookup[head]
            unit, _, rest = tail.partition('.')
            if int(unit) != chosen:
                continue
            key = f'{plain}.{rest}' if plain else rest
        out[key] = value
    return out



def expand_lego_state_dict(
        state_dict: Dict[str, torch.Tensor],
        plain: Dict[str, torch.Tensor],
        layers: Sequence[Tuple[str, str]],
        optional: Optional[Callable[[str], bool]] = None,
        skip_prefixes: Sequence[str] = ('controller.', ),
        owner: str = 'the lego backbone'
) -> 'OrderedDict[str, torch.Tensor]':
    """Copy a plain state dict into every unit of every lego layer.

    The inverse of :func:`collapse_lego_state_dict`: the lego key
    ``{lego_prefix}.units.{k}.{rest}`` takes ``plain['{plain_prefix}.{rest}']``
    for every unit ``k``; keys outside the lego layers are copied as they
    are. Everything is checked before anything is returned.

    Args:
        state_dict: the lego backbone's own state dict (the keys and shapes
            to fill).
        plain: the plain backbone state dict.
        layers: ``(lego_prefix, plain_prefix)`` per lego layer.
        optional: plain keys that may be missing; their lego keys are left
            out of the result (they keep their current values).
        skip_prefixes: lego keys not to fill (the controller's logits).
        owner: how error messages name the backbone.

    Returns:
        OrderedDict: lego keys -> tensors of ``plain``.

    Raises:
        ValueError: shapes that disagree (the keys are named).
        KeyError: keys that ``plain`` lacks, or keys of ``plain`` that the
            backbone has no place for.

    Example:
        >>> lego = {'a.units.0.w': torch.zeros(2), 'a.units.1.w':
        ...         torch.zeros(2), 'b': torch.zeros(1)}
        >>> out = expand_lego_state_dict(
        ...     lego, {'a.w': torch.ones(2), 'b': torch.ones(1)}, [('a', 'a')])
        >>> sorted(out)
        ['a.units.0.w', 'a.units.1.w', 'b']
    """
    lookup = dict(layers)
    out = OrderedDict()
    used, missing, mismatched = set(), [], []
    for key, value in state_dict.items():
        if any(key.startswith(p) for p in skip_prefixes):
            continue
        head, sep, tail = key.partition('.units.')
        plain_key = key
        if sep and head in lookup:
            rest = tail.partition('.')[2]
            plain_key = f'{lookup[head]}.{rest}' if lookup[head] else rest
        if plain_key not in plain:
            if not (optional and optional(plain_key)) and \
                    repr(plain_key) not in missing:
                missing.append(repr(plain_key))
            continue
        used.add(plain_key)
        theirs, ours = tuple(plain[plain_key].shape), tuple(value.shape)
        if theirs != ours:
            problem = f'{plain_key!r}: {theirs} in the checkpoint, {ours} here'
            if problem not in mismatched:
                mismatched.append(problem)
            continue
        out[key] = plain[plain_key]
    unexpected = [repr(k) for k in plain if k not in used]
    check_state_match(f'the checkpoint does not match {owner}', mismatched,
                      missing, unexpected)
    return out


class LegoBackboneMixin:
    """Mixed into a backbone (an ``nn.Module``) whose layers are
    :class:`LegoLayer` s.

    The subclass calls :meth:`_init_lego` once its lego layers exist. The
    active task is set with :meth:`set_task` or the :meth:`use_task` context
    (the multi-task model does this before it runs a task's algorithm, so
    upstream detectors, segmentors and classifiers call ``backbone(x)``
    unchanged).
    """

    controller: Optional[GumbelController]

    def _init_lego(self,
                   tasks: Optional[Sequence[str]],
                   num_units: int,
                   routing_mode: str = 'soft',
                   tau: float = 5.0,
                   task: Optional[str] = None,
                   unit_init: str = 'independent') -> None:
        self.lego_layer_names = [
            name for name, m in self.named_modules()
            if isinstance(m, LegoLayer)
        ]
        if num_units < 1:
            raise ValueError(f'num_units must be >= 1, got {num_units}')
        if unit_init not in UNIT_INITS:
            raise ValueError(f'unit_init must be one of {UNIT_INITS}, got '
                             f'{unit_init!r}')
        self.num_units = num_units
        self.unit_init = unit_init
        self._task: Optional[str] = None
        tasks = list(tasks or [])
        if num_units == 1 and not tasks:
            self.controller = None  # static network
        else:
            if not tasks:
                raise ValueError(
                    f'a lego backbone with num_units={num_units} needs the '
                    'list of task names (tasks=[...])')
            self.controller = GumbelController(
                tasks,
                num_layers=len(self.lego_layer_names),
                num_units=num_units,
                mode=routing_mode,
                tau=tau)
        # the path a forward takes when no task is set (a lego backbone in
        # a plain upstream config); set_task / use_task override it
        self.set_task(task)

    def apply_unit_init(self) -> None:
        """After the units' own initialisation: with ``unit_init='copy'``
        every unit of a layer starts as a copy of its unit 0, so the lego
        backbone starts as the static network whatever the routing (as
        sparse upcycling starts its experts from one dense layer); the
        units part as the tasks that select them train them."""
        if self.unit_init != 'copy':
            return
        for name in self.lego_layer_names:
            self.get_submodule(name).copy_first_unit()

    # -------------------------------------------------------------- tasks
    @property
    def tasks(self) -> List[str]:
        return [] if self.controller is None else list(self.controller.tasks)

    @property
    def task(self) -> Optional[str]:
        return self._task

    def set_task(self, task: Optional[str]) -> None:
        """Choose the task whose path the next forward calls take."""
        if task is not None and self.controller is not None:
            self.controller.check_task(task)
        self._task = task

    @contextmanager
    def use_task(self, task: Optional[str]) -> Iterator[None]:
        previous = self._task
        self.set_task(task)
        try:
            yield
        finally:
            self._task = previous

    def lego_routings(self) -> List[Optional[Routing]]:
        """Sample this forward call's routing of every lego layer."""
        if self.controller is None:
            return [None] * len(self.lego_layer_names)
        if self._task is None:
            raise RuntimeError(
                'no task is set on the lego backbone: give task=NAME in its '
                'config (e.g. in a plain upstream config) or call '
                f'set_task(NAME), NAME one of {self.controller.tasks}')
        return self.controller.route(self._task)

    # ----------------------------------------------------------- read-out
    def selection_probabilities(self) -> torch.Tensor:
        """Per-task, per-layer selection probabilities, shape (T, L, N)."""
        if self.controller is None:
            return torch.ones(1, len(self.lego_layer_names), 1)
        return self.controller.probabilities()

    def probability_table(self, digits: int = 2) -> str:
        if self.controller is None:
            return 'static lego backbone (one unit per layer)'
        return self.controller.probability_table(
            self.lego_layer_display_names(), digits=digits)

    def lego_layer_display_names(self) -> List[str]:
        """Short names of the lego layers for tables and figures."""
        return list(self.lego_layer_names)

    # ------------------------------------------------------ extraction
    def resolve_path(self,
                     task: Optional[str] = None,
                     path: Optional[Sequence[int]] = None) -> List[int]:
        """The unit index of every layer: explicit ``path`` or the argmax
        path of ``task``."""
        num_layers = len(self.lego_layer_names)
        if path is not None:
            path = [int(k) for k in path]
            if len(path) != num_layers:
                raise ValueError(f'path has {len(path)} entries, the '
                                 f'backbone has {num_layers} lego layers')
            bad = [k for k in path if not 0 <= k < self.num_units]
            if bad:
                raise ValueError(f'unit indices {bad} out of range for '
                                 f'num_units={self.num_units}')
            return path
        if self.controller is None:
            return [0] * num_layers
        if task is None:
            raise ValueError('give a task name or an explicit path; tasks: '
                             f'{self.controller.tasks}')
        return self.controller.path(task)

    def plain_layer_prefixes(self) -> List[Tuple[str, str]]:
        """``(lego_prefix, plain_prefix)`` for every lego layer; override
        when the plain layout differs from dropping ``.units.k``."""
        return [(name, name) for name in self.lego_layer_names]

    def extract_path(self,
                     task: Optional[str] = None,
                     path: Optional[Sequence[int]] = None
                     ) -> 'OrderedDict[str, torch.Tensor]':
        """A plain backbone state dict of one path (see subclasses for the
        upstream layouts it loads into); its norms carry ``task``'s own
        statistics where the backbone keeps per-task statistics."""
        from gppf_mm.models.layers import select_task_statistics
        return collapse_lego_state_dict(
            select_task_statistics(self, self.state_dict(), task),
            self.plain_layer_prefixes(), self.resolve_path(task, path))
