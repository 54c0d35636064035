# Copyright (c) gppf_mm contributors. All rights reserved.
"""The all-reduce latency benchmark runs its three settings and the TCP
round trip and reports ratios against one thread per rank."""
import os.path as osp
import re
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_benchmark_reports_every_setting(load_tool):
    tool = load_tool('analysis_tools/benchmark_allreduce.py')
    # the median of an odd and an even count, by hand
    assert tool.summary([3.0, 1.0, 2.0]) == (2.0, 2.0)
    assert tool.summary([4.0, 1.0, 2.0, 3.0]) == (3.0, 2.5)
    proc = subprocess.run(
        [sys.executable, 'tools/analysis_tools/benchmark_allreduce.py',
         '--iters', '20'], cwd=REPO, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = re.findall(r'^(.+?)\s+median\s+(\d+) us\s+mean\s+(\d+) us',
                      proc.stdout, re.M)
    names = [name.strip() for name, _, _ in rows]
    assert names == [n for n, _, _ in tool.SETTINGS] + [
        'TCP round trip, 32 bytes']
    assert all(int(median) > 0 and int(mean) > 0 for _, median, mean in rows)
    assert 'median / threads=1: 1.00' in proc.stdout
    assert proc.stdout.count('median / threads=1:') == 3
