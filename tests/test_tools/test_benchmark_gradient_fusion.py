# Copyright (c) gppf_mm contributors. All rights reserved.
import os.path as osp
import re
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_benchmark_runs_on_two_ranks_and_reports_a_ratio():
    proc = subprocess.run([
        sys.executable, 'tools/analysis_tools/benchmark_gradient_fusion.py',
        '--arch', 'resnet18', '--size', '32', '--batch-size', '2', '--iters',
        '2', '--warmup', '1'
    ], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = re.search(r'ratio fusion / DDP \(median of paired steps\): '
                  r'([0-9.]+)', proc.stdout)
    assert m and float(m.group(1)) > 0, proc.stdout
    steps = re.findall(r'median step\s+(\w+)\s*:\s+([0-9.]+) ms',
                       proc.stdout)
    assert {name for name, _ in steps} == {'fusion', 'DDP'}
    assert all(float(ms) > 0 for _, ms in steps)
    # both replicas took the same updates
    m = re.search(r'max \|weight fusion - weight DDP\| after the run: '
                  r'([0-9.e+-]+)', proc.stdout)
    assert m and float(m.group(1)) < 1e-6, proc.stdout
