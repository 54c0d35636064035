# Copyright (c) gppf_mm contributors. All rights reserved.
"""CKA of the lego layers of a small LegoResNet and its heatmap."""
import importlib.util
import os.path as osp

import pytest
import torch

from gppf_mm.analysis import collect_layer_grams, lego_layers
from gppf_mm.models.backbones import LegoResNet
from gppf_mm.visualization import model_cka, plot_cka_heatmap

TOOL = osp.join(osp.dirname(osp.dirname(osp.dirname(__file__))), 'tools',
                'analysis_tools', 'cka.py')


def small_resnet():
    torch.manual_seed(0)
    model = LegoResNet(depth=18, base_channels=8, num_units=2,
                       tasks=['a', 'b']).eval()
    with torch.no_grad():  # different paths for the two tasks
        model.controller.logits['a'].zero_()
        model.controller.logits['a'][:, 0] = 1.0
        model.controller.logits['b'].zero_()
        model.controller.logits['b'][:, 1] = 1.0
    return model


def batches(num=2, n=6, size=32):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(n, 3, size, size, generator=g) for _ in range(num)]


def is_png(path):
    with open(path, 'rb') as f:
        return f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_within_model_cka_and_heatmap(tmp_path):
    model = small_resnet()
    names = model.lego_layer_display_names()
    assert len(lego_layers(model)) == len(names) == 9  # stem + 8 blocks
    assert names[0] == 'Stem' and names[-1] == 'Res5.1'
    result = model_cka(model, 'a', batches())
    cka = result['within1']
    assert result['layers1'] == names
    assert cka.shape == (9, 9) and cka.dtype == torch.float64
    torch.testing.assert_close(cka, cka.t())
    torch.testing.assert_close(cka.diagonal(),
                               torch.ones(9, dtype=torch.float64))
    assert bool(torch.isfinite(cka).all())
    assert 'cross' not in result
    out = plot_cka_heatmap(cka, names, names, str(tmp_path / 'cka.png'),
                           title='within')
    assert osp.getsize(out) > 0 and is_png(out)
    with pytest.raises(ValueError, match='labels'):
        plot_cka_heatmap(cka, names[:3], names, str(tmp_path / 'x.png'))


def test_two_paths_and_hooks_removed(tmp_path):
    model = small_resnet()
    data = batches()
    result = model_cka(model, 'a', data, task2='b')
    assert result['cross'].shape == (9, 9)
    assert result['within2'].shape == (9, 9)
    # the paths differ, so the layers of the two paths differ
    assert float(result['cross'].diagonal()[1:].min()) < 1.0 - 1e-6
    # the same path compared with itself: cross CKA == within CKA
    same = model_cka(model, 'a', data, model2=model, task2='a')
    torch.testing.assert_close(same['cross'], same['within1'])
    assert all(not m._forward_hooks for m in lego_layers(model))
    # one Gram matrix per layer and batch, of the batch's n examples
    with model.use_task('a'):
        grams = collect_layer_grams(model, model, data[:1])
    assert len(grams) == 1 and len(grams[0]) == 9
    assert grams[0][0].shape == (6, 6)


def test_tool_arguments():
    spec = importlib.util.spec_from_file_location('tool_cka', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    args = tool.parse_args(['cfg.py', 'a.pth', '--task', 'det', '--out-dir',
                            'out'])
    assert args.num_batches == 8 and args.task2 is None
    with pytest.raises(SystemExit):
        tool.parse_args(['cfg.py', 'a.pth', '--task', 'det', '--out-dir',
                         'out', '--config2', 'c2.py'])
