# Copyright (c) gppf_mm contributors. All rights reserved.
"""A rank killed (SIGKILL) mid-iteration under the launcher: the other rank
and the launcher stop quickly, non-zero, naming the lost rank; resuming
from the last checkpoint reproduces the uninterrupted run bit-for-bit.

2 gloo ranks under ``torch.distributed.run`` (what ``tools/dist_train.sh``
runs), SIMT with cross-task BN and gradient fusion on a toy 2-task model.
"""
import os
import os.path as osp
import subprocess
import sys
import textwrap
import time

import torch

from gppf_mm.utils import find_free_port, safe_torch_load

SCRIPT = textwrap.dedent('''
    import os, signal, sys
    import torch
    import torch.nn as nn
    from mmengine.hooks import Hook
    from mmengine.model import BaseModel
    from torch.utils.data import Dataset

    from gppf_mm.engine import GPPFRunner
    from gppf_mm.models.layers import CrossTaskBatchNorm2d
    from gppf_mm.utils import register_all_modules

    work_dir, max_iters, kill_at, resume = sys.argv[1:5]
    register_all_modules()
    # what tools/train.py does on a machine without CUDA
    torch.distributed.init_process_group('gloo')

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = nn.Conv2d(2, 4, 1)
            self.bn = CrossTaskBatchNorm2d(4)
            self.heads = nn.ModuleDict({t: nn.Conv2d(4, 1, 1)
                                        for t in 'ab'})

        def forward(self, inputs, data_samples=None, mode='tensor',
                    task=None):
            x = torch.stack(inputs)
            out = self.heads[task](self.bn(self.conv(x)))
            return {f'{task}.loss': (out - 1).pow(2).mean()}

    class Data(Dataset):
        def __len__(self):
            return 12

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            return dict(inputs=torch.randn(2, 3, 3, generator=g),
                        data_samples=i)

    class KillRankOne(Hook):
        """Rank 1 dies in the middle of iteration `kill_at` (after its
        forward collectives began: from inside the step)."""
        def before_train_iter(self, runner, batch_idx, data_batch=None):
            if runner.rank == 1 and runner.iter == int(kill_at):
                os.kill(os.getpid(), signal.SIGKILL)

    def loader():
        return dict(dataset=Data(), batch_size=2, num_workers=0,
                    sampler=dict(type='ResumableInfiniteSampler'))

    runner = GPPFRunner(
        model=Toy(), work_dir=work_dir,
        train_dataloader=dict(a=loader(), b=loader()),
        train_cfg=dict(type='SIMTTrainLoop', max_iters=int(max_iters),
                       task_weights=dict(a=1.0, b=1.0)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1,
                                          momentum=0.9)),
        default_hooks=dict(
            checkpoint=dict(type='GPPFCheckpointHook', interval=4,
                            by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='SIMTStateHook'), KillRankOne()],
        log_processor=dict(by_epoch=False),
        launcher='pytorch',
        cfg=dict(model_wrapper_cfg=dict(
            type='gppf_mm.GradientFusionWrapper')),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        randomness=dict(seed=0), resume=resume == '1',
        default_scope='gppf_mm')
    runner.train()
''')


def launch(tmp_path, work_dir, max_iters, kill_at=-1, resume=False):
    script = tmp_path / 'train_two_ranks.py'
    script.write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nnodes=1',
         '--nproc_per_node=2', f'--master_port={find_free_port()}',
         str(script), str(work_dir), str(max_iters), str(kill_at),
         '1' if resume else '0'],
        capture_output=True, text=True, timeout=240, env=env)
    return out, time.monotonic() - start


def test_a_killed_rank_stops_the_job_and_resume_is_exact(tmp_path):
    full = tmp_path / 'full'
    out, _ = launch(tmp_path, full, 12)
    assert out.returncode == 0, out.stderr[-3000:]
    expected = safe_torch_load(str(full / 'iter_12.pth'))['state_dict']

    work = tmp_path / 'killed'
    out, seconds = launch(tmp_path, work, 12, kill_at=6)
    log = out.stdout + out.stderr
    assert out.returncode != 0
    assert seconds < 60 + 30  # the launcher's own start-up included
    # the launcher names the lost rank and its signal
    assert 'local_rank: 1' in log and 'SIGKILL' in log, log[-3000:]
    assert osp.basename(open(work / 'last_checkpoint').read().strip()) == \
        'iter_4.pth'

    out, _ = launch(tmp_path, work, 12, resume=True)
    if out.returncode != 0 and 'Iter(train)' not in out.stdout + out.stderr \
            and 'terminate called without an active exception' in out.stderr:
        # a rank aborted while the launcher was starting it, before any
        # iteration (seen once in a full suite run on 2 busy cores, not
        # reproduced alone): start-up, not the resume under test
        out, _ = launch(tmp_path, work, 12, resume=True)
    assert out.returncode == 0, out.stderr[-3000:]
    got = safe_torch_load(str(work / 'iter_12.pth'))['state_dict']
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0)
