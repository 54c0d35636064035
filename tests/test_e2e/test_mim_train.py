# Copyright (c) gppf_mm contributors. All rights reserved.
"""`mim train gppf_mm CONFIG_NAME`: mim finds the config through the
package's .mim link (from any working directory) and runs tools/train.py
on the CPU."""
import glob
import json
import math
import os
import os.path as osp
import subprocess
import sys

from gppf_mm.datasets.generation import generate_benchmark

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIG_NAME = 'gppf_lego-r50-slim-n2-soft_2xb-simt-450it_gppf-bench.py'


def test_mim_train_finds_the_config_and_trains(tmp_path):
    bench = str(tmp_path / 'bench')
    generate_benchmark(bench, seed=0, scale='tiny')
    work_dir = str(tmp_path / 'work')
    mim = osp.join(osp.dirname(sys.executable), 'mim')
    env = dict(os.environ, GPPF_DATA_ROOT=bench, OMP_NUM_THREADS='1',
               CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run([
        mim, 'train', 'gppf_mm', CONFIG_NAME, '--gpus', '0', '--work-dir',
        work_dir, '--cfg-options', 'train_cfg.max_iters=2',
        'train_cfg.val_begin=3', 'default_hooks.logger.interval=1'
    ], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    # the config was found in the package (only its name was given)
    assert 'we find the config file in codebase gppf_mm' in out
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))
    (scalars, ) = glob.glob(osp.join(work_dir, '*', 'vis_data',
                                     'scalars.json'))
    with open(scalars) as f:
        records = [json.loads(line) for line in f]
    losses = [r['loss'] for r in records if 'loss' in r]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
