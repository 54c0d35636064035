# Copyright (c) gppf_mm contributors. All rights reserved.
"""Training on one GPU: the 3-task SIMT run (Mask R-CNN, UperNet,
classifier; hard routing) through ``tools/train.py --amp`` (MMEngine's
AmpOptimWrapper, fp16 with a dynamic loss scale) on 2 virtual devices, and
a task's path extracted from the checkpoint it wrote, which holds CUDA
tensors, into a stock mmdet ResNet that equals the lego backbone on CUDA.
Run by ``tools/misc/gpu_check.sh``; skipped without CUDA."""
import glob
import json
import math
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from gppf_mm.datasets.generation import generate_benchmark
from gppf_mm.models.backbones.path_extraction import load_lego_backbone
from gppf_mm.utils import safe_torch_load

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason='needs CUDA')

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIG = osp.join(REPO, 'tests', 'data', 'configs', 'gppf_e2e_3tasks.py')
ITERS = 6  # the config's max_iters; checkpoints at 3 and 6


@pytest.fixture(scope='module')
def amp_run(tmp_path_factory):
    bench = str(tmp_path_factory.mktemp('bench') / 'gppf_bench')
    generate_benchmark(bench, seed=0, scale='tiny')
    work_dir = str(tmp_path_factory.mktemp('amp'))
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', CONFIG, '--amp', '--work-dir',
         work_dir, '--cfg-options', 'train_cfg.virtual_devices=2'],
        cwd=REPO, env=dict(os.environ, GPPF_DATA_ROOT=bench,
                           CUDA_VISIBLE_DEVICES='0'),
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return work_dir


def test_amp_training_on_cuda(amp_run):
    (path, ) = glob.glob(osp.join(amp_run, '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        records = [r for r in map(json.loads, f) if 'loss' in r]
    assert [r['iter'] for r in records] == list(range(1, ITERS + 1))
    assert all(math.isfinite(r['loss']) for r in records)
    ckpt = safe_torch_load(osp.join(amp_run, f'iter_{ITERS}.pth'),
                           map_location='cpu')
    # the AmpOptimWrapper's GradScaler state is saved beside the optimizer
    scaler = ckpt['optimizer']['loss_scaler']
    assert 0 < scaler['scale'] <= 2.0**16
    for key, value in ckpt['state_dict'].items():
        if value.is_floating_point():
            assert torch.isfinite(value).all(), key


def test_path_of_a_model_trained_on_cuda(amp_run, load_tool, tmp_path):
    from mmdet.registry import MODELS as MMDET_MODELS

    ckpt = osp.join(amp_run, f'iter_{ITERS}.pth')
    out = tmp_path / 'street_det_r50.pth'
    result = load_tool('extract_path.py').main(
        [ckpt, '--task', 'street_det', '--out', str(out)])
    assert all(v.device.type == 'cpu'
               for v in result['state_dict'].values())
    plain_cfg = dict(result['meta']['backbone_cfg'], init_cfg=dict(
        type='Pretrained', checkpoint=str(out), prefix='backbone.'))
    plain = MMDET_MODELS.build(plain_cfg)
    plain.init_weights()
    lego, _ = load_lego_backbone(ckpt)
    lego.set_task('street_det')
    for m in lego.modules():  # the task's own BN statistics, as GPPF does
        if hasattr(m, 'set_active_task'):
            m.set_active_task('street_det')
    plain.cuda().eval()  # mmdet's ResNet.train returns None
    lego.cuda().eval()
    x = torch.rand(2, 3, 64, 64, device='cuda')
    with torch.no_grad():
        outs = list(zip(lego(x), plain(x)))
    assert len(outs) == 4
    for a, b in outs:
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
