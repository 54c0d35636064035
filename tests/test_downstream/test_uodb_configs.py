# Copyright (c) gppf_mm contributors. All rights reserved.
"""Every UODB config (the paper's Table 8 settings) trains and evaluates
AP50, shrunk from the command line only, on a VOC tree of its own layout
written from the config (suffix, image sets, classes)."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from test_downstream_configs import REPO, init, train

from gppf_mm.testing.mini_voc import (
    dataset_classes,
    voc_datasets,
    write_mini_voc,
)

UODB = sorted(glob.glob(osp.join(REPO, 'configs', 'downstream', 'uodb',
                                 '*gppf-path*.py')))
DYFINETUNE = osp.join(REPO, 'configs', 'downstream', 'uodb',
                      'faster-rcnn_lego-r50-dyfinetune_8xb2-1800it_'
                      'uodb-clipart.py')
# the paper's Table 8: max steps, decay steps, test size, anchor scale
# (8 x strides 4..64 = COCO's 32..512; 4 = halved)
TABLE8 = dict(
    kitti=(4000, [3000, 3500], 800, 8),
    widerface=(26000, [18000, 24000], 800, 4),
    voc=(18000, [12000, 16000], 800, 8),
    lisa=(18000, [12000, 16000], 800, 4),
    dota=(26000, [18000, 24000], 800, 8),
    watercolor=(1800, [1500, 1700], 800, 8),
    clipart=(1800, [1500, 1700], 800, 8),
    comic=(1800, [1500, 1700], 800, 8),
    kitchen=(13500, [9000, 12000], 800, 8),
    deeplesion=(50000, [30000, 40000], 512, 4))


def name_of(path):
    return osp.basename(path).split('_uodb-')[1][:-3]


def test_ten_datasets_with_table8_settings():
    assert sorted(map(name_of, UODB)) == sorted(TABLE8)
    for path in UODB:
        cfg = Config.fromfile(path)
        iters, steps, size, scale = TABLE8[name_of(path)]
        assert cfg.train_cfg.max_iters == iters
        assert cfg.param_scheduler[-1].milestones == steps
        assert cfg.param_scheduler[-1].gamma == 0.1
        assert cfg.model.rpn_head.anchor_generator.scales == [scale]
        optim = cfg.optim_wrapper.optimizer
        assert (optim.type, optim.lr, optim.momentum,
                optim.weight_decay) == ('SGD', 0.01, 0.9, 4e-5)
        assert cfg.train_dataloader.batch_size * 8 == 16
        for key, ds in voc_datasets(cfg):
            resize = [t for t in ds.pipeline if t.type == 'Resize']
            assert min(resize[0].scale) == size, (path, key)
            assert cfg.model.roi_head.bbox_head.num_classes == len(
                dataset_classes(ds))
        assert cfg.val_evaluator.eval_mode == 'area'
        assert cfg.model.backbone.init_cfg.type == 'gppf_mm.GPPFPath'
        assert cfg.load_from.endswith('objects365_heads.pth')


def shrink(cfg, written):
    """Command-line options: data roots, 96 px images, slim widths."""
    opts = ['model.backbone.base_channels=16',
            'model.neck.in_channels=[64,128,256,512]', 'load_from=None',
            'param_scheduler.0.end=1', 'param_scheduler.1.milestones=[1]']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.num_workers=0',
                 f'{loader}.persistent_workers=False']
    for key, ds in voc_datasets(cfg):
        opts.append(f'{key}.data_root={written[key]["data_root"]}')
        index = [t.type for t in ds.pipeline].index('Resize')
        opts.append(f'{key}.pipeline.{index}.scale=(96,96)')
    return opts


@pytest.mark.parametrize('path', UODB, ids=name_of)
def test_uodb_config_trains_on_its_mini_tree(path, gppf_ckpt, tmp_path):
    cfg = Config.fromfile(path)
    root = str(tmp_path / 'data')
    written = write_mini_voc(cfg, root, images=2)
    # the first image set's first image, with the config's suffix
    _, first = voc_datasets(cfg)[0]
    sub = first.get('data_prefix', {}).get('sub_data_root', '')
    image = osp.join(root, sub, 'JPEGImages',
                     '000000' + first.get('img_suffix', '.jpg'))
    assert osp.exists(image), image
    metrics, log = train(path, str(tmp_path / 'work'), root,
                         *shrink(cfg, written), *init(gppf_ckpt,
                                                      'street_det'))
    assert 0 <= metrics['pascal_voc/AP50'] <= 1
    assert "of task 'street_det' in " + gppf_ckpt in log
    classes = dataset_classes(voc_datasets(cfg)[-1][1])
    assert f'| {classes[0]} ' in log  # VOCMetric's table, own classes


def test_uodb_dyfinetune_ends_with_a_stock_backbone(gppf_ckpt, tmp_path):
    """DyFinetune on a UODB config: the lego units of the GPPF checkpoint
    under a new controller; the extracted path strict-loads into MMDet's
    ResNet."""
    from mmdet.models.backbones import ResNet

    from gppf_mm.utils import safe_torch_load
    cfg = Config.fromfile(DYFINETUNE)
    assert cfg.train_cfg.max_iters == 1800  # the Clipart schedule
    root = str(tmp_path / 'data')
    written = write_mini_voc(cfg, root, images=2)
    work = str(tmp_path / 'work')
    metrics, log = train(DYFINETUNE, work, root, *shrink(cfg, written),
                         *init(gppf_ckpt))
    assert 0 <= metrics['pascal_voc/AP50'] <= 1
    extracted = safe_torch_load(osp.join(work, 'uodb_clipart_path.pth'))
    stock = ResNet(depth=50, base_channels=16)
    stock.load_state_dict({k[len('backbone.'):]: v
                           for k, v in extracted['state_dict'].items()},
                          strict=True)
