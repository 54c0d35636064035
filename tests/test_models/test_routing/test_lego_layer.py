# Copyright (c) gppf_mm contributors. All rights reserved.
import pytest
import torch

from gppf_mm.models.routing import LegoLayer, Routing


def layer(with_cp=False):
    torch.manual_seed(0)
    return LegoLayer(lambda: torch.nn.Linear(3, 2), num_units=2,
                     with_cp=with_cp)


def test_bad_arguments():
    with pytest.raises(ValueError, match='num_units must be an int >= 1, '
                       'got 0'):
        LegoLayer(lambda: torch.nn.Identity(), 0)
    with pytest.raises(RuntimeError, match='a lego layer with 2 units needs '
                       'a routing'):
        layer()(torch.rand(4, 3))


def test_units_are_separate():
    lego = layer()
    assert len(lego.units) == 2
    assert not torch.equal(lego.units[0].weight, lego.units[1].weight)
    assert [k for k, _ in lego.named_parameters()] == [
        'units.0.weight', 'units.0.bias', 'units.1.weight', 'units.1.bias'
    ]


def test_soft_combination_and_argmax():
    lego = layer()
    x = torch.rand(4, 3)
    w = torch.tensor([0.25, 0.75])
    out = lego(x, Routing([0, 1], w))
    expected = 0.25 * lego.units[0](x) + 0.75 * lego.units[1](x)
    torch.testing.assert_close(out, expected)
    assert torch.equal(lego(x, Routing([1], None)), lego.units[1](x))
    single = LegoLayer(lambda: torch.nn.Linear(3, 2), num_units=1)
    assert torch.equal(single(x), single.units[0](x))


@pytest.mark.parametrize('with_cp', [False, True])
def test_hard_gate_is_straight_through(with_cp):
    lego = layer(with_cp)
    x = torch.rand(4, 3, requires_grad=True)
    logits = torch.zeros(2, requires_grad=True)
    soft = torch.softmax(logits, dim=0)
    weights = torch.tensor([0.0, 1.0]) - soft.detach() + soft
    out = lego(x, Routing([1], weights))
    # value: the unit output itself (one-hot weight 1), no copy
    assert torch.equal(out, lego.units[1](x))
    grad_out = torch.rand(4, 2)
    out.backward(grad_out)
    # d out / d unit = 1, d out / d w_1 = <grad, y>
    y = lego.units[1](x).detach()
    expected_w1 = (grad_out * y).sum()
    torch.testing.assert_close(
        logits.grad,
        torch.stack([-0.25 * expected_w1, 0.25 * expected_w1]))
    torch.testing.assert_close(lego.units[1].weight.grad, grad_out.T @ x)
    assert lego.units[0].weight.grad is None


def test_with_cp_matches_without_in_soft_mode():
    grads = []
    for with_cp in (False, True):
        lego = layer(with_cp)
        x = torch.rand(4, 3, generator=torch.Generator().manual_seed(1),
                       requires_grad=True)
        w = torch.tensor([0.3, 0.7], requires_grad=True)
        lego(x, Routing([0, 1], w)).sum().backward()
        grads.append((w.grad, x.grad, lego.units[0].weight.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
