# Copyright (c) gppf_mm contributors. All rights reserved.
import math

import pytest
import torch

from gppf_mm.models.routing import GumbelController


def test_bad_arguments():
    with pytest.raises(ValueError, match='at least one task'):
        GumbelController([], 2, 2)
    with pytest.raises(ValueError, match='unique'):
        GumbelController(['a', 'a'], 2, 2)
    with pytest.raises(ValueError, match='num_units must be >= 1, got 0'):
        GumbelController(['a'], 2, 0)
    ctrl = GumbelController(['a'], 2, 2)
    with pytest.raises(ValueError, match="routing mode must be one of"):
        ctrl.mode = 'sparse'
    with pytest.raises(ValueError, match='tau must be > 0, got 0'):
        ctrl.set_temperature(0)
    with pytest.raises(KeyError, match=r"unknown task 'b'.*\['a'\]"):
        ctrl.route('b')
    with pytest.raises(ValueError, match='num_layers must be >= 1, got 0'):
        GumbelController(['a'], 0, 2)
    with pytest.raises(ValueError, match="routing mode must be one of "
                       r"\('soft', 'hard', 'argmax'\), got 'gumbel'"):
        GumbelController(['a'], 2, 2, mode='gumbel')
    with pytest.raises(ValueError, match='tau must be > 0, got -0.5'):
        GumbelController(['a'], 2, 2, tau=-0.5)
    with pytest.raises(KeyError, match=r"unknown task None.*\['a'\]"):
        ctrl.path(None)


def test_soft_weights_follow_eq1():
    ctrl = GumbelController(['a'], num_layers=1, num_units=3, tau=2.0)
    with torch.no_grad():
        ctrl.logits['a'].copy_(torch.tensor([[0.1, 0.5, -0.3]]))
    ctrl.manual_seed(11)
    (route, ) = ctrl.route('a')
    g = torch.Generator().manual_seed(11)
    u = torch.rand((1, 3), generator=g).clamp(min=torch.finfo().tiny)
    gumbel = -torch.log(-torch.log(u))
    expected = torch.softmax((ctrl.logits['a'] + gumbel) / 2.0, dim=-1)[0]
    assert route.active == [0, 1, 2]
    torch.testing.assert_close(route.weights, expected)


def test_seeded_sampling_is_reproducible():
    ctrl = GumbelController(['a'], num_layers=5, num_units=4, mode='hard')
    ctrl.manual_seed(3)
    first = [r.active for r in ctrl.route('a')]
    ctrl.manual_seed(3)
    assert [r.active for r in ctrl.route('a')] == first


def test_hard_samples_follow_softmax_of_logits():
    probs = torch.tensor([0.2, 0.5, 0.3])
    ctrl = GumbelController(['a'], num_layers=1, num_units=3, mode='hard',
                            tau=0.7)
    with torch.no_grad():
        ctrl.logits['a'].copy_(probs.log()[None])
    ctrl.manual_seed(0)
    counts = torch.zeros(3)
    draws = 4000
    for _ in range(draws):
        (route, ) = ctrl.route('a')
        counts[route.active[0]] += 1
        # straight-through: value one-hot, gradient to the logits
        assert route.weights[route.active[0]].item() == pytest.approx(1.0)
        assert route.weights.sum().item() == pytest.approx(1.0)
    freq = counts / draws
    # 3 sigma of a binomial with p <= 0.5 and n = 4000 is 0.024
    assert torch.allclose(freq, probs, atol=0.03), freq


def test_eval_routes_by_argmax():
    ctrl = GumbelController(['a', 'b'], num_layers=2, num_units=3)
    with torch.no_grad():
        ctrl.logits['b'].copy_(torch.tensor([[0., 2., 1.], [3., 0., 0.]]))
    ctrl.eval()
    routes = ctrl.route('b')
    assert [r.active for r in routes] == [[1], [0]]
    assert all(r.weights is None for r in routes)
    assert ctrl.path('b') == [1, 0]


def test_probability_table():
    ctrl = GumbelController(['coco', 'ade'], num_layers=2, num_units=2)
    with torch.no_grad():
        ctrl.logits['ade'].copy_(torch.tensor([[math.log(3), 0.], [0., 0.]]))
    probs = ctrl.probabilities()
    assert probs.shape == (2, 2, 2)
    torch.testing.assert_close(probs[1, 0], torch.tensor([0.75, 0.25]))
    table = ctrl.probability_table(['Stem', 'Res2.0']).splitlines()
    assert table[0].split() == ['Stem', 'Res2.0']
    assert table[2].split() == ['ade', '0:0.75', '0:0.50']


def test_settings_and_modes():
    ctrl = GumbelController(['a', 'b'], num_layers=4, num_units=2, tau=3)
    assert (ctrl.mode, ctrl.tau) == ('soft', 3.0)
    ctrl.set_temperature(0.5)
    ctrl.mode = 'hard'
    assert (ctrl.mode, ctrl.tau) == ('hard', 0.5)
    assert set(ctrl.logits) == {'a', 'b'}
    assert all(p.shape == (4, 2) for p in ctrl.logits.values())
    routes = ctrl.route('a')
    assert len(routes) == 4 and all(len(r.active) == 1 for r in routes)
    ctrl.mode = 'argmax'
    assert all(r.weights is None for r in ctrl.route('a'))
    single = GumbelController(['a'], num_layers=2, num_units=1)
    assert [r.active for r in single.route('a')] == [[0], [0]]
    assert all(r.weights is None for r in single.route('a'))


def test_hard_straight_through_gradient():
    ctrl = GumbelController(['a', 'b'], num_layers=2, num_units=3,
                            mode='hard', tau=1.0)
    ctrl.manual_seed(1)
    routes = ctrl.route('a')
    for r in routes:
        expected = torch.zeros(3)
        expected[r.active[0]] = 1.0
        torch.testing.assert_close(r.weights, expected)
    sum(r.weights[r.active[0]] * (i + 1)
        for i, r in enumerate(routes)).backward()
    grad = ctrl.logits['a'].grad
    assert (grad.abs().sum(dim=1) > 0).all()
    torch.testing.assert_close(grad.sum(dim=1), torch.zeros(2),
                               atol=1e-6, rtol=0)
    assert ctrl.logits['b'].grad is None


def test_temperature_sharpens_soft_weights():
    ctrl = GumbelController(['a'], num_layers=1, num_units=2)
    with torch.no_grad():
        ctrl.logits['a'].copy_(torch.tensor([[0.0, 1.0]]))
    spread = []
    for tau in (10.0, 0.05):
        ctrl.set_temperature(tau)
        ctrl.manual_seed(0)
        (route, ) = ctrl.route('a')
        weights = route.weights.detach()
        spread.append(float(weights.max() - weights.min()))
    assert spread[0] < 0.2 and spread[1] > 0.9


def test_state_summary():
    ctrl = GumbelController(['a'], num_layers=1, num_units=4)
    assert ctrl.state_summary() == {'a': [[0.25, 0.25, 0.25, 0.25]]}
