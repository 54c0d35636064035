# Copyright (c) gppf_mm contributors. All rights reserved.
"""Test helpers for lego backbones."""
from typing import Dict, Sequence, Tuple

import torch
import torch.nn as nn


def count_unit_calls(model: nn.Module) -> Dict[Tuple[str, int], int]:
    """Count the forward calls of every unit of a lego backbone.

    Registers a forward hook on each unit; the returned dict fills up as the
    model runs, keyed by ``(lego layer name, unit index)``.

    Example:
        >>> from gppf_mm.models.backbones import LegoResNet
        >>> model = LegoResNet(depth=18, base_channels=8).eval()
        >>> calls = count_unit_calls(model)
        >>> _ = model(torch.rand(1, 3, 32, 32))
        >>> calls[('stem_layer', 0)], len(calls)
        (1, 9)
    """
    calls: Dict[Tuple[str, int], int] = {}

    def hook(key):
        return lambda module, args, output: calls.__setitem__(
            key, calls.get(key, 0) + 1)

    for name in model.lego_layer_names:
        for k, unit in enumerate(model.get_submodule(name).units):
            unit.register_forward_hook(hook((name, k)))
    return calls


def assert_outputs_equal(ours: Sequence[torch.Tensor],
                         theirs: Sequence[torch.Tensor],
                         atol: float = 1e-5) -> None:
    """Assert two sequences of feature maps have equal shapes and values
    (absolute tolerance ``atol``).

    Example:
        >>> assert_outputs_equal([torch.ones(2)], (torch.ones(2), ))
    """
    assert len(ours) == len(theirs), (
        f'{len(ours)} outputs against {len(theirs)}')
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a.shape == b.shape, f'output {i}: {a.shape} != {b.shape}'
        torch.testing.assert_close(a, b, rtol=0, atol=atol)
