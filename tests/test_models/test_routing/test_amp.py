# Copyright (c) gppf_mm contributors. All rights reserved.
"""Routing under fp16 / bf16 autocast: the routing weights' gradient is
reduced in float32, so a loss-scaled fp16 step does not overflow in it."""
import pytest
import torch
import torch.nn as nn

from gppf_mm.models.backbones import LegoResNet
from gppf_mm.models.routing import LegoLayer
from gppf_mm.models.routing.gumbel_controller import Routing

DTYPES = [torch.float16, torch.bfloat16]
DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('hard', [True, False])
def test_weight_gradient_is_exact_in_low_precision(dtype, hard):
    """A unit output of 2^20 ones and an output gradient of 0.1 (a loss
    scale of 2^16 makes such values common): <grad, y> = 104857.6, above
    fp16's largest value; the routing weight gets it in float32."""
    layer = LegoLayer(nn.Identity, num_units=2)
    weights = torch.tensor([1.0, 0.0], requires_grad=True)
    x = torch.ones(1, 16, 256, 256, dtype=dtype)
    routing = Routing([0], weights) if hard else Routing([0, 1], weights)
    out = layer(x, routing)
    assert out.dtype == dtype
    out.backward(torch.full_like(out, 0.1))
    expected = 0.1 * x.numel()
    assert weights.grad.dtype == torch.float32
    grad_in_dtype = torch.tensor(0.1, dtype=dtype).double().item() * x.numel()
    # hard: only the active unit's weight; soft: both units (identities)
    want = [grad_in_dtype, 0.0 if hard else grad_in_dtype]
    torch.testing.assert_close(weights.grad, torch.tensor(want), rtol=1e-6,
                               atol=0)
    assert abs(grad_in_dtype - expected) / expected < 5e-3


def fp32_gate_gradients(hard):
    """The same gate in float32 keeps the gradients it had (hand values)."""
    layer = LegoLayer(nn.Identity, num_units=2)
    weights = torch.tensor([0.3, 0.7], requires_grad=True)
    x = torch.arange(6.0).view(1, 1, 2, 3).requires_grad_()
    routing = Routing([1], weights) if hard else Routing([0, 1], weights)
    out = layer(x, routing)
    out.backward(torch.full_like(out, 2.0))
    return out, x.grad, weights.grad


def test_float32_gradients_by_hand():
    out, gx, gw = fp32_gate_gradients(hard=True)
    assert torch.equal(out, torch.arange(6.0).view(1, 1, 2, 3))
    assert torch.equal(gx, torch.full((1, 1, 2, 3), 2.0))
    assert gw.tolist() == [0.0, 30.0]  # 2 * (0 + 1 + ... + 5)
    out, gx, gw = fp32_gate_gradients(hard=False)
    torch.testing.assert_close(out, torch.arange(6.0).view(1, 1, 2, 3))
    torch.testing.assert_close(gx, torch.full((1, 1, 2, 3), 2.0))
    assert gw.tolist() == [30.0, 30.0]


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('mode', ['hard', 'soft'])
def test_fifty_autocast_steps_keep_a_finite_loss_scale(dtype, mode, device):
    """50 SGD steps of a lego ResNet-18 under autocast with a loss of about
    10 (a detector's sum of terms): fp16 with a GradScaler starting at
    2^16. The scaler settles on a scale that the activations' gradients
    allow; the routing logits never overflow on their own (before the
    float32 reduction they did at 2^16 and 2^15: 4 extra skipped steps)."""
    torch.manual_seed(0)
    backbone = LegoResNet(depth=18, base_channels=8, num_units=2,
                          tasks=['t'], routing_mode=mode, out_indices=(3, ))
    backbone.init_weights()
    backbone.to(device).train()
    named = list(backbone.named_parameters())
    optim = torch.optim.SGD([p for _, p in named], lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler(device, enabled=dtype == torch.float16)
    g = torch.Generator().manual_seed(1)
    logits_alone = 0
    for _ in range(50):
        x = torch.randn(2, 3, 64, 64, generator=g).to(device)
        with backbone.use_task('t'), torch.autocast(device, dtype=dtype):
            (feat, ) = backbone(x)
            loss = 10 * (feat.float() - 1.0).pow(2).mean()
        assert torch.isfinite(loss)
        scaler.scale(loss).backward()
        finite = {n: bool(torch.isfinite(p.grad).all()) for n, p in named
                  if p.grad is not None}
        logits = [n for n in finite if 'logits' in n]
        assert logits
        others_ok = all(ok for n, ok in finite.items() if n not in logits)
        if others_ok and not all(finite[n] for n in logits):
            logits_alone += 1
        scaler.step(optim)
        scaler.update()
        optim.zero_grad()
    assert logits_alone == 0
    if scaler.is_enabled():
        assert scaler.get_scale() >= 2.0**12
    for _, p in named:
        assert torch.isfinite(p).all()
