# Copyright (c) gppf_mm contributors. All rights reserved.
"""A process killed while a checkpoint is written: the previous checkpoint
stays complete and loadable, no partial file sits at a final name,
``last_checkpoint`` points at a complete file and ``--resume`` continues
from it."""
import os
import os.path as osp
import signal
import subprocess
import sys
import textwrap

import torch

from gppf_mm.utils import safe_torch_load

SCRIPT = textwrap.dedent('''
    import os, signal, sys
    import torch
    import torch.nn as nn
    from mmengine.fileio.backends import LocalBackend
    from mmengine.model import BaseModel
    from torch.utils.data import Dataset

    from gppf_mm.engine import GPPFRunner
    from gppf_mm.utils import register_all_modules

    work_dir, max_iters, kill_at, resume = sys.argv[1:5]
    register_all_modules()

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 2)

        def forward(self, inputs, data_samples=None, mode='tensor'):
            out = self.linear(torch.stack(inputs))
            if mode == 'loss':
                return dict(loss=((out - torch.stack(data_samples))**2)
                            .mean())
            return out

    class Data(Dataset):
        def __len__(self):
            return 16

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            return dict(inputs=torch.randn(4, generator=g),
                        data_samples=torch.randn(2, generator=g))

    # the save of checkpoint number `kill_at` dies half-way through writing
    saves = []
    put = LocalBackend.put

    def dying_put(self, obj, filepath):
        if str(filepath).endswith('.pth') or '.pth.' in str(filepath):
            saves.append(filepath)
            if len(saves) == int(kill_at):
                with open(filepath, 'wb') as f:
                    f.write(obj[:len(obj) // 2])
                    f.flush()
                    os.fsync(f.fileno())
                os.kill(os.getpid(), signal.SIGKILL)
        return put(self, obj, filepath)

    LocalBackend.put = dying_put
    torch.manual_seed(0)
    runner = GPPFRunner(
        model=Toy(), work_dir=work_dir,
        train_dataloader=dict(
            dataset=Data(), batch_size=4, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True, seed=3)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1,
                                          momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=int(max_iters)),
        default_hooks=dict(
            checkpoint=dict(type='GPPFCheckpointHook', interval=2,
                            by_epoch=False, max_keep_ckpts=1),
            logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=7), resume=resume == '1',
        default_scope='gppf_mm')
    runner.train()
''')


def run(tmp_path, work_dir, max_iters, kill_at=0, resume=False):
    script = tmp_path / 'train_toy.py'
    script.write_text(SCRIPT)
    return subprocess.run(
        [sys.executable, str(script), str(work_dir), str(max_iters),
         str(kill_at), '1' if resume else '0'],
        capture_output=True, text=True, timeout=300)


def test_killed_during_a_save_keeps_the_previous_checkpoint(tmp_path):
    full = tmp_path / 'full'
    out = run(tmp_path, full, 6)
    assert out.returncode == 0, out.stderr[-3000:]
    expected = safe_torch_load(str(full / 'iter_6.pth'))['state_dict']

    work = tmp_path / 'crash'
    # the second save (iteration 4) is killed half-way
    out = run(tmp_path, work, 6, kill_at=2)
    assert out.returncode == -signal.SIGKILL, out.stderr[-3000:]
    names = sorted(os.listdir(work))
    # max_keep_ckpts=1: iteration 2 is only removed after iteration 4 is
    # complete, and no partial file has a checkpoint's name
    assert 'iter_2.pth' in names and 'iter_4.pth' not in names, names
    assert [n for n in names if n.endswith('.pth')] == ['iter_2.pth']
    with open(work / 'last_checkpoint') as f:
        assert osp.basename(f.read().strip()) == 'iter_2.pth'
    assert safe_torch_load(str(work / 'iter_2.pth'))['meta']['iter'] == 2

    # --resume picks iteration 2 and reproduces the uninterrupted run
    out = run(tmp_path, work, 6, resume=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'Load checkpoint from' in out.stdout + out.stderr
    got = safe_torch_load(str(work / 'iter_6.pth'))['state_dict']
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0)
    # the leftover temporary file of the killed save is not a checkpoint,
    # and only the newest one is kept
    assert [n for n in os.listdir(work) if n.endswith('.pth')] == [
        'iter_6.pth'
    ]
