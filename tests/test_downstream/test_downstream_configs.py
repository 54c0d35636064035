# Copyright (c) gppf_mm contributors. All rights reserved.
"""Every shipped downstream config trains shrunk on the embedded
benchmark's held-out sets and evaluates with its upstream metric; dynamic
finetuning ends with a plain backbone that strict-loads into the stock
ResNet and computes what the lego backbone's argmax path computes."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from gppf_mm.models.backbones import LegoResNet
from gppf_mm.utils import register_all_modules, safe_torch_load

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
DOWN = osp.join(REPO, 'configs', 'downstream')
DET = 'faster-rcnn_{}_1xb4-600it_underwater-voc.py'
CLS = '{}_1xb32-300it_texture-cls.py'
DEPTH = 'bts_{}_1xb8-300it_town-depth.py'
TIMEOUT = 300


SHORT = ('train_cfg.max_iters=2', 'train_cfg.val_interval=2',
         'default_hooks.checkpoint.interval=2')


def train(config, work_dir, bench, *options, length=SHORT):
    """Train a config for 2 iterations (``length``: the options that make
    it so) with ``options``; return the last logged metrics and the log."""
    cmd = [sys.executable, 'tools/train.py', osp.join(DOWN, config),
           '--work-dir', work_dir, '--cfg-options', *length,
           'default_hooks.logger.interval=1', *options]
    env = dict(os.environ, GPPF_DATA_ROOT=bench, OMP_NUM_THREADS='1',
               CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    (scalars, ) = glob.glob(osp.join(work_dir, '*', 'vis_data',
                                     'scalars.json'))
    with open(scalars) as f:
        records = [json.loads(line) for line in f]
    losses = [r['loss'] for r in records if 'loss' in r]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    return records[-1], proc.stdout + proc.stderr


def init(checkpoint, task=None):
    opts = [f'model.backbone.init_cfg.checkpoint={checkpoint}']
    return opts + ([f'model.backbone.init_cfg.task={task}'] if task else [])


@pytest.mark.parametrize('kind', ['scratch', 'gppf-path'])
def test_detection_config_trains_and_reports_ap50(kind, bench, gppf_ckpt,
                                                  tmp_path):
    opts = [] if kind == 'scratch' else init(gppf_ckpt, 'street_det')
    metrics, log = train(DET.format(f'r50-slim-{kind}'), str(tmp_path),
                         bench, *opts)
    assert 0 <= metrics['pascal_voc/AP50'] <= 1
    # UODBDataset: VOCMetric names the dataset's classes, not VOC's
    assert '| jellyfish |' in log and 'aeroplane' not in log
    if kind == 'gppf-path':  # GPPFPath's own log line, not the config
        assert "ResNet initialised from the path [" in log
        assert "of task 'street_det' in " + gppf_ckpt in log


@pytest.mark.parametrize('kind', ['scratch', 'gppf-path'])
def test_classification_config_trains_and_reports_top1(kind, bench,
                                                       gppf_ckpt, tmp_path):
    opts = [] if kind == 'scratch' else init(gppf_ckpt, 'shapes_cls')
    metrics, log = train(CLS.format(f'resnet50-slim-{kind}'),
                         str(tmp_path), bench, *opts)
    assert 0 <= metrics['accuracy/top1'] <= 100
    assert (kind == 'gppf-path') == (
        "of task 'shapes_cls' in " + gppf_ckpt in log)


@pytest.mark.parametrize('kind', ['scratch', 'gppf-path'])
def test_depth_config_trains_and_reports_kitti_metrics(kind, bench,
                                                       gppf_ckpt, tmp_path):
    opts = [] if kind == 'scratch' else init(gppf_ckpt, 'street_det')
    metrics, _ = train(DEPTH.format(f'r50-slim-{kind}'), str(tmp_path),
                       bench, *opts)
    assert set(metrics) >= {f'depth/{m}' for m in (
        'd1', 'd2', 'd3', 'abs_rel', 'sq_rel', 'rmse', 'rmse_log', 'silog')}
    assert 0 <= metrics['depth/d1'] <= metrics['depth/d3'] <= 1
    assert metrics['depth/rmse'] > 0


@pytest.mark.parametrize('library', ['mmdet', 'mmpretrain', 'mmseg'])
def test_dyfinetune_extracts_a_stock_backbone_and_retrains_on_it(
        library, bench, gppf_ckpt, tmp_path):
    register_all_modules(init_default_scope=False)
    if library == 'mmdet':
        task, dy, retrain = ('underwater_voc', DET.format(
            'lego-r50-slim-dyfinetune'), DET.format('r50-slim-retrain'))
        from mmdet.models.backbones import ResNet
        stock = ResNet(depth=50, base_channels=16)
    elif library == 'mmpretrain':
        task, dy, retrain = ('texture_cls', CLS.format(
            'lego-r50-slim-dyfinetune'), CLS.format('resnet50-slim-retrain'))
        from mmpretrain.models.backbones import ResNet
        stock = ResNet(depth=50, stem_channels=16, base_channels=16,
                       out_indices=(0, 1, 2, 3))
    else:
        task, dy, retrain = ('town_depth', DEPTH.format(
            'lego-r50-slim-dyfinetune'), DEPTH.format('r50-slim-retrain'))
        from mmseg.models.backbones import ResNet
        stock = ResNet(depth=50, stem_channels=16, base_channels=16)
    dy_dir = str(tmp_path / 'dy')
    records, log = train(dy, dy_dir, bench, *init(gppf_ckpt))
    # the temperature reached its end at half of the 2 steps
    assert "the path of task '%s'" % task in log

    extracted = safe_torch_load(osp.join(dy_dir, f'{task}_path.pth'))
    assert extracted['meta']['target'] == library
    stock.load_state_dict({k[len('backbone.'):]: v
                           for k, v in extracted['state_dict'].items()},
                          strict=True)
    # the lego backbone of the last checkpoint on its argmax path computes
    # what the extracted stock backbone computes
    cfg = Config.fromfile(osp.join(DOWN, dy))
    backbone_cfg = {k: v for k, v in cfg.model.backbone.items()
                    if k not in ('type', 'init_cfg')}
    backbone_cfg['out_indices'] = (0, 1, 2, 3)
    lego = LegoResNet(**backbone_cfg)
    state = safe_torch_load(osp.join(dy_dir, 'iter_2.pth'))['state_dict']
    lego.load_state_dict({k[len('backbone.'):]: v for k, v in state.items()
                          if k.startswith('backbone.')}, strict=True)
    lego.eval()
    stock.eval()
    assert extracted['meta']['path'] == lego.controller.logits[task].argmax(
        -1).tolist()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        for a, b in zip(lego(x), stock(x)):
            torch.testing.assert_close(b, a, rtol=0, atol=1e-5)

    # retrain: the stock config starts from the extracted file
    path_file = osp.join(dy_dir, f'{task}_path.pth')
    metrics, log = train(retrain, str(tmp_path / 'retrain'), bench,
                         *init(path_file))
    # MMEngine's Pretrained init read the file (its log line, not the
    # config dump), and the run was evaluated by its library's metric
    assert f'load backbone. in model from: {path_file}' in log
    key, low, high = dict(mmdet=('pascal_voc/AP50', 0, 1),
                          mmpretrain=('accuracy/top1', 0, 100),
                          mmseg=('depth/d1', 0, 1))[library]
    assert low <= metrics[key] <= high


def kitti_run(config, tmp_path, *options):
    """A KITTI Eigen config on a mini KITTI tree (raw frames, projected
    ground truth / 256, Eigen split files with focal lengths and a frame
    without ground truth), shrunk in crop and length from the command
    line."""
    from gppf_mm.testing.mini_kitti import write_mini_kitti
    root = str(tmp_path / 'kitti')
    write_mini_kitti(root, train=2, test=2)
    metrics, log = train(
        config, str(tmp_path / 'work'), root,
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
        'train_dataloader.dataset.pipeline.3.crop_size=(64,128)',
        'model.decode_head.channels=32', 'param_scheduler.0.end=1',
        'param_scheduler.1.begin=1', 'param_scheduler.1.end=2', *options)
    assert '1 line(s) without ground truth depth skipped' in log
    assert 0 <= metrics['depth/d1'] <= 1 and metrics['depth/silog'] >= 0
    return log


def test_kitti_eigen_config_on_a_mini_kitti_tree(gppf_ckpt, tmp_path):
    """The paper-setting KITTI config, shrunk in width too."""
    kitti_run('bts_r50-gppf-path_8xb4-30k_kitti-eigen-352x704.py', tmp_path,
              'model.backbone.stem_channels=16',
              'model.backbone.base_channels=16',
              'model.decode_head.in_channels=[64,128,256,512]',
              *init(gppf_ckpt, 'street_det'))


def test_swin_kitti_config_starts_from_a_gppf_swin_path(gppf_swin_ckpt,
                                                        tmp_path):
    """GPPF-SwinT on KITTI: MMSeg's Swin loads its init_cfg checkpoint
    itself, here a gppf-path:// name resolved to the task's path; the
    backbone that trains is that path (checked against the extraction) and
    stochastic depth is the paper's 0.4."""
    from mmseg.models.backbones import SwinTransformer

    from gppf_mm.models.backbones import path_uri
    from gppf_mm.models.backbones.path_extraction import (
        extract_path_checkpoint,
    )
    ckpt, lego = gppf_swin_ckpt
    config = 'bts_swin-t-gppf-path_8xb4-30k_kitti-eigen-352x704.py'
    cfg = Config.fromfile(osp.join(DOWN, config))
    assert cfg.model.backbone.drop_path_rate == 0.4
    assert cfg.model.backbone.init_cfg.checkpoint.startswith('gppf-path://')
    uri = path_uri(ckpt, task='ade20k', target='mmseg')
    log = kitti_run(
        config, tmp_path, 'model.backbone.embed_dims=24',
        'model.backbone.depths=[2,2,2,2]',
        'model.backbone.num_heads=[1,2,3,4]', 'model.backbone.window_size=4',
        'model.decode_head.in_channels=[24,48,96,192]',
        f'model.backbone.init_cfg.checkpoint={uri}')
    expected = extract_path_checkpoint(lego, task='ade20k', target='mmseg')
    assert f"the path {expected['meta']['path']} of task 'ade20k'" in log
    # the weights it started from: a fresh Swin initialised the same way
    swin = SwinTransformer(embed_dims=24, depths=[2, 2, 2, 2],
                           num_heads=[1, 2, 3, 4], window_size=4,
                           init_cfg=dict(type='Pretrained', checkpoint=uri))
    swin.init_weights()
    for key, value in swin.state_dict().items():
        torch.testing.assert_close(
            value, expected['state_dict']['backbone.' + key], rtol=0,
            atol=0, msg=key)
