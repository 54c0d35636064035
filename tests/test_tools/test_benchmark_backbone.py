# Copyright (c) gppf_mm contributors. All rights reserved.
import pytest


@pytest.mark.filterwarnings('ignore:torch.utils.checkpoint')
def test_benchmark_runs_and_reports_ratios(load_tool):
    tool = load_tool('analysis_tools/benchmark_backbone.py')
    lines = []
    args = tool.parse_args([
        '--depth', '18', '--base-channels', '8', '--batch-size', '2',
        '--size', '32', '--repeats', '2', '--warmup', '0'
    ])
    result = tool.run(args, printer=lines.append)
    assert result['argmax_diff'] == 0.0
    assert set(result['times']) == {
        'plain', 'plain_cp', 'hard', 'soft', 'argmax', 'hard_cp', 'soft_cp'
    }
    mem = result['memory']
    # plain, argmax and hard (but for the routing weights) save the same
    # activations; soft keeps both units and the combination; with_cp keeps
    # little more than the inputs of the blocks
    assert mem['argmax'] == mem['plain']
    assert mem['plain'] <= mem['hard'] < 1.01 * mem['plain']
    assert 1.8 * mem['plain'] < mem['soft'] < 3 * mem['plain']
    for name in ('plain', 'hard', 'soft'):
        assert result['ratios'][f'{name}_cp/{name}'] < 0.6
    assert any(line.startswith('time hard/plain = ') for line in lines)
    assert lines[2].split() == ['variant', 'time', 'ms', 'x', 'plain', 'act',
                                'MB', 'x', 'plain']


@pytest.mark.filterwarnings('ignore:torch.utils.checkpoint')
def test_benchmark_autocast_bf16_halves_saved_activations(load_tool):
    """--autocast bf16 runs the forward in bfloat16 (here on the CPU): the
    convolutions save bf16 tensors, so the plain network's saved
    activations shrink towards half of fp32's (plus the bf16 copies of the
    weights, which autocast saves too: 0.69 at this size, 1.18 at 64 x 64
    where the copies dominate)."""
    tool = load_tool('analysis_tools/benchmark_backbone.py')
    small = ['--depth', '18', '--base-channels', '8', '--batch-size', '2',
             '--size', '128', '--repeats', '1', '--warmup', '0']
    fp32 = tool.run(tool.parse_args(small), printer=lambda _: None)
    lines = []
    bf16 = tool.run(tool.parse_args(small + ['--autocast', 'bf16']),
                    printer=lines.append)
    assert 'autocast bf16' in lines[0]
    ratio = bf16['memory']['plain'] / fp32['memory']['plain']
    assert 0.5 < ratio < 0.8, ratio
