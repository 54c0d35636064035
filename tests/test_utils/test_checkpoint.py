# Copyright (c) gppf_mm contributors. All rights reserved.
"""A GPPF runner checkpoint saves and resumes on the installed torch
(>= 2.6), without changing MMEngine's loader for anyone else."""
import os.path as osp
import pickle
import subprocess
import sys

import mmengine.runner.checkpoint as mmengine_checkpoint
import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner.checkpoint import CheckpointLoader
from torch.utils.data import Dataset

from gppf_mm.engine import GPPFRunner
from gppf_mm.utils import (
    gppf_checkpoint_loading,
    load_checkpoint_file,
    safe_torch_load,
)
from gppf_mm.utils.checkpoint import UNSAFE_ENV, load_from_local


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(inputs)
        y = torch.stack(data_samples)
        out = self.linear(x)
        if mode == 'loss':
            return dict(loss=((out - y)**2).mean())
        return out


class ToyData(Dataset):

    def __len__(self):
        return 16

    def __getitem__(self, idx):
        g = torch.Generator().manual_seed(idx)
        return dict(
            inputs=torch.randn(4, generator=g),
            data_samples=torch.randn(2, generator=g))


def make_runner(work_dir, max_iters, resume_from=None):
    torch.manual_seed(0)
    return GPPFRunner(
        model=ToyModel(),
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=ToyData(),
            sampler=dict(type='DefaultSampler', shuffle=True, seed=3),
            batch_size=4,
            num_workers=0),
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=0.1, momentum=0.9,
                           weight_decay=1e-4)),
        param_scheduler=dict(
            type='MultiStepLR', milestones=[3], by_epoch=False),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(
                type='CheckpointHook', interval=2, by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=7),
        resume=resume_from is not None,
        load_from=resume_from,
        default_scope='gppf_mm')


def test_plain_torch_load_needs_the_fix(tmp_path):
    runner = make_runner(str(tmp_path / 'a'), max_iters=2)
    runner.train()
    ckpt = osp.join(str(tmp_path / 'a'), 'iter_2.pth')
    # what torch >= 2.6 does by default with an MMEngine checkpoint
    with pytest.raises(pickle.UnpicklingError):
        torch.load(ckpt)
    # in a fresh process HistoryBuffer's statistics table is still empty
    code = ('import sys; from gppf_mm.utils import safe_torch_load; '
            'print(safe_torch_load(sys.argv[1])["meta"]["iter"])')
    out = subprocess.run([sys.executable, '-c', code, ckpt],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == '2', out.stderr[-2000:]
    loaded = safe_torch_load(ckpt)
    assert loaded['meta']['iter'] == 2
    assert set(loaded) >= {
        'meta', 'state_dict', 'message_hub', 'optimizer', 'param_schedulers'
    }


def test_save_resume_round_trip(tmp_path):
    full = make_runner(str(tmp_path / 'full'), max_iters=6)
    full.train()
    expected = {k: v.clone() for k, v in full.model.state_dict().items()}

    first = make_runner(str(tmp_path / 'part'), max_iters=4)
    first.train()
    ckpt = osp.join(str(tmp_path / 'part'), 'iter_4.pth')
    resumed = make_runner(str(tmp_path / 'part2'), 6, resume_from=ckpt)
    resumed.train()
    assert resumed.iter == 6
    for key, value in resumed.model.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=1e-6)
    # the scheduler state (milestone at iter 3) and momentum came back too
    lr = resumed.optim_wrapper.get_lr()['lr'][0]
    assert lr == pytest.approx(0.01)


class Evil:

    def __reduce__(self):
        return (print, ('this must not run', ))


def test_unknown_objects_are_refused(tmp_path, monkeypatch):
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'payload': Evil()}, path)
    monkeypatch.delenv(UNSAFE_ENV, raising=False)
    with pytest.raises(pickle.UnpicklingError, match='evil.pth'):
        safe_torch_load(path)


def local_loader():
    return CheckpointLoader._get_checkpoint_loader('model.pth')


def test_no_global_patch(tmp_path):
    """Importing gppf_mm and training / resuming with its runner leaves
    MMEngine's loader of local files to every other user of the process."""
    import gppf_mm  # noqa: F401
    from gppf_mm.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    stock = mmengine_checkpoint.load_from_local
    assert local_loader() is stock
    make_runner(str(tmp_path / 'a'), max_iters=2).train()
    ckpt = osp.join(str(tmp_path / 'a'), 'iter_2.pth')
    resumed = make_runner(str(tmp_path / 'b'), 3, resume_from=ckpt)
    resumed.train()
    assert resumed.iter == 3
    assert local_loader() is stock
    # inside the block MMEngine's API reads gppf_mm checkpoints safely,
    # nested blocks restore the stock loader once, also after an error
    with pytest.raises(RuntimeError, match='inner'):
        with gppf_checkpoint_loading():
            assert local_loader() is load_from_local
            with gppf_checkpoint_loading():
                assert local_loader() is load_from_local
            assert local_loader() is load_from_local
            raise RuntimeError('inner')
    assert local_loader() is stock
    assert load_checkpoint_file(ckpt)['meta']['iter'] == 2
    assert local_loader() is stock


def test_check_checkpoint_fits_names_every_problem():
    from gppf_mm.utils.checkpoint import check_checkpoint_fits
    model = nn.Sequential(nn.Linear(4, 2), nn.BatchNorm1d(2))
    same = dict(state_dict={f'module.{k}': v
                            for k, v in model.state_dict().items()})
    check_checkpoint_fits(model, same, 'same.pth')  # 'module.' stripped

    wider = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    with pytest.raises(ValueError) as e:
        check_checkpoint_fits(model, dict(state_dict=wider.state_dict()),
                              'wider.pth', hint='Try X.')
    assert str(e.value).startswith('wider.pth does not fit the model')
    assert "'0.weight': (3, 4) in the checkpoint, (2, 4) here" in str(e.value)
    assert '6 shape mismatch(es)' in str(e.value)  # 2 + 4 BN tensors
    assert str(e.value).endswith('Try X.')

    state = model.state_dict()  # a bare state dict works too
    state['2.task.weight'] = torch.ones(1)
    del state['1.running_var']
    with pytest.raises(KeyError, match=r"1 missing key\(s\): '1.running_var'"
                       r"; 1 unexpected key\(s\): '2.task.weight'"):
        check_checkpoint_fits(model, state, 'other.pth')
    state['1.running_var'] = torch.ones(2)
    check_checkpoint_fits(model, state, 'other.pth',
                          ignore_unexpected=lambda k: k.startswith('2.'))
