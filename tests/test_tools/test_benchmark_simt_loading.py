# Copyright (c) gppf_mm contributors. All rights reserved.
"""The SIMT loading benchmark: lazy iterators decode what is consumed."""
import math


def test_decoded_matches_consumed(load_tool, capsys):
    tool = load_tool('analysis_tools/benchmark_simt_loading.py')
    rows = tool.main([
        '--iters', '40', '--weights', '2.5', '1.0', '0.0', '--batch-sizes',
        '3', '2', '4', '--workers', '1', '--prefetch-factor', '2',
        '--dataset-size', '50', '--decode-ms', '0', '--step-ms', '1'
    ])
    by_task = {r['task']: r for r in rows}
    assert by_task['task0']['drawn'] + by_task['task1']['drawn'] == 40
    for name in ('task0', 'task1'):
        r = by_task[name]
        assert r['consumed'] <= r['decoded'] <= r['consumed'] + r['bound']
        assert r['ratio'] <= 1.1
    # a task never drawn starts no iterator and decodes nothing
    assert by_task['task2']['decoded'] == 0
    assert math.isnan(by_task['task2']['ratio'])
    assert 'ratio' in capsys.readouterr().out


def test_eager_iterators_decode_unused_tasks(load_tool):
    tool = load_tool('analysis_tools/benchmark_simt_loading.py')
    rows = tool.main([
        '--iters', '5', '--weights', '1.0', '0.0', '--batch-sizes', '2', '3',
        '--workers', '1', '--prefetch-factor', '2', '--dataset-size', '20',
        '--decode-ms', '0', '--step-ms', '1', '--eager'
    ])
    assert rows[1]['drawn'] == 0 and rows[1]['decoded'] == 6
