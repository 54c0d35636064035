# Copyright (c) gppf_mm contributors. All rights reserved.
"""Classification transfer (the paper's Tables 6-7): every config trains
shrunk on a mini copy of its dataset, in the dataset's own files, read by
MMPretrain's own class, and reports its metric; the held-out validation
split; the grid-search tool, resumable, on a mini CIFAR-10."""
import glob
import json
import os
import os.path as osp

import pytest
from mmengine.config import Config
from test_downstream_configs import REPO, init, train

from gppf_mm.datasets import holdout_indices
from gppf_mm.testing.mini_cls_transfer import (
    MINI_CLS_DATASETS,
    write_mini_cls_dataset,
)

CLS_DIR = osp.join(REPO, 'configs', 'downstream', 'cls_transfer')
CONFIGS = sorted(glob.glob(osp.join(CLS_DIR, '*.py')))
# config name -> mini dataset key
KEYS = {'in1k': 'imagenet', 'stanford-cars': 'stanford_cars',
        'fgvc-aircraft': 'fgvc_aircraft',
        'oxford-iiit-pet': 'oxford_iiit_pet'}
MEAN_PER_CLASS = {'fgvc_aircraft', 'oxford_iiit_pet', 'caltech101',
                  'flowers102'}


def key_of(path):
    name = osp.basename(path)[:-3].split('_')[-1]
    return KEYS.get(name, name)


def test_holdout_is_stratified_disjoint_and_seeded():
    labels = [0] * 10 + [1] * 5 + [2] * 2 + [3]
    held = holdout_indices(labels, 0.2, seed=0)
    per_class = [sum(labels[i] == c for i in held) for c in range(4)]
    # round(0.2 * n), at least one of a class with 2+, none of a singleton
    assert per_class == [2, 1, 1, 0]
    assert held == sorted(set(held))
    assert held == holdout_indices(labels, 0.2, seed=0)
    assert held != holdout_indices(labels, 0.2, seed=1)
    with pytest.raises(ValueError, match='fraction must be in'):
        holdout_indices(labels, 1.0)


def test_holdout_split_parts_of_a_real_dataset(tmp_path):
    from mmpretrain.registry import DATASETS

    import gppf_mm.datasets  # noqa: F401  (registers HoldoutSplit)
    info = write_mini_cls_dataset('caltech101', str(tmp_path), per_class=5)
    inner = dict(type='Caltech101', data_root=str(tmp_path), split='train')
    parts = {p: DATASETS.build(dict(type='HoldoutSplit', part=p,
                                    dataset=inner))
             for p in ('train', 'val')}
    assert type(parts['val']).__name__ == 'Caltech101'
    paths = {p: [d['img_path'] for d in ds] for p, ds in parts.items()}
    assert not set(paths['train']) & set(paths['val'])
    assert len(paths['train']) + len(paths['val']) == info['splits']['train']
    assert len(paths['val']) == info['classes']  # round(0.2 * 5) per class
    assert parts['val'].metainfo == parts['train'].metainfo


def test_every_table7_dataset_and_in1k_has_a_config():
    assert sorted(map(key_of, CONFIGS)) == sorted(MINI_CLS_DATASETS)
    for path in CONFIGS:
        cfg = Config.fromfile(path)
        if key_of(path) == 'imagenet':  # Table 6: the IN-21K recipe
            assert [a.type for a in cfg.model.train_cfg.augments] == [
                'Mixup', 'CutMix']
            assert cfg.model.head.loss.label_smooth_val == 0.1
            assert cfg.optim_wrapper.optimizer.lr == 0.01
            continue
        metric = cfg.grid_search.metric
        assert metric == ('single-label/recall' if key_of(path) in
                          MEAN_PER_CLASS else 'accuracy/top1'), path
        assert cfg.train_cfg.max_iters == 20000
        assert cfg.train_dataloader.batch_size * 8 == 256
        assert cfg.optim_wrapper.optimizer.momentum == 0.9


def shrink(cfg, root, key):
    """Options for a slim ResNet-50 on 32 px crops of the mini copy."""
    opts = ['model.backbone.stem_channels=16',
            'model.backbone.base_channels=16', 'model.head.in_channels=512',
            'train_dataloader.batch_size=4']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.dataset.data_root={root}',
                 f'{loader}.num_workers=0',
                 f'{loader}.persistent_workers=False']
        pipeline = cfg[loader]['dataset']['pipeline']
        for i, t in enumerate(pipeline):
            if t['type'] in ('RandomResizedCrop', 'CenterCrop'):
                field = 'scale' if 'scale' in t else 'crop_size'
                opts.append(f'{loader}.dataset.pipeline.{i}.{field}=32')
            elif t['type'] == 'ResizeEdge':
                opts.append(f'{loader}.dataset.pipeline.{i}.scale=36')
        if MINI_CLS_DATASETS[key]['reader'] != MINI_CLS_DATASETS[key][
                'type']:
            opts.append(f'{loader}.dataset.type='
                        f"{MINI_CLS_DATASETS[key]['reader']}")
    return opts


def with_readers(path, key, tmp_path):
    """The config itself or, for CIFAR (whose MMPretrain class checks the
    original files' md5), a config inheriting it that imports the readers of
    the mini copies (``gppf_mm.testing.mini_cls``)."""
    if MINI_CLS_DATASETS[key]['reader'] == MINI_CLS_DATASETS[key]['type']:
        return path
    wrapper = str(tmp_path / osp.basename(path))
    with open(wrapper, 'w') as f:
        f.write(f'_base_ = {path!r}\ncustom_imports = dict(imports=['
                f"'gppf_mm', 'gppf_mm.datasets', 'gppf_mm.testing.mini_cls'"
                '], allow_failed_imports=False)\n')
    return wrapper


@pytest.mark.parametrize('path', CONFIGS, ids=key_of)
def test_cls_config_trains_on_its_mini_dataset(path, gppf_ckpt, tmp_path):
    key = key_of(path)
    cfg = Config.fromfile(path)
    root = str(tmp_path / 'data')
    info = write_mini_cls_dataset(key, root)
    opts = shrink(cfg, root, key) + init(gppf_ckpt, 'shapes_cls')
    length = dict()
    if key == 'imagenet':  # 300 epochs: one epoch of 6 images, batch 4
        length = dict(length=('train_cfg.max_epochs=1',
                              'train_cfg.val_interval=1',
                              'default_hooks.checkpoint.interval=1'))
    metrics, log = train(with_readers(path, key, tmp_path),
                         str(tmp_path / 'work'), root, *opts,
                         **length)
    assert "of task 'shapes_cls' in " + gppf_ckpt in log
    assert 0 <= metrics['accuracy/top1'] <= 100
    if key in MEAN_PER_CLASS:
        assert 0 <= metrics['single-label/recall'] <= 100
    # the model was built for the dataset's classes
    assert info['num_categories'] == cfg.model.head.num_classes or (
        key == 'imagenet' and cfg.model.head.num_classes == 1000)


def test_grid_search_selects_on_validation_and_resumes(load_tool, gppf_ckpt,
                                                       tmp_path):
    tool = load_tool('analysis_tools/cls_transfer_grid.py')
    config = osp.join(CLS_DIR, 'resnet50-gppf-path_8xb32-20k_cifar10.py')
    root = str(tmp_path / 'cifar')
    write_mini_cls_dataset('cifar10', root, per_class=5)
    cfg = Config.fromfile(config)
    opts = shrink(cfg, root, 'cifar10') + init(gppf_ckpt, 'shapes_cls')
    for part in ('train', 'val'):
        opts += [f'grid_search.{part}.dataset.data_root={root}',
                 f'grid_search.{part}.dataset.type=MiniCIFAR10']
    work = str(tmp_path / 'grid')
    argv = [with_readers(config, 'cifar10', tmp_path), '--work-dir', work,
            '--lrs', '0.01', '0.1', '--wds',
            '0', '1e-4', '--iters', '2', '--cfg-options', *opts]
    os.environ['OMP_NUM_THREADS'] = '1'
    result = tool.main(argv)

    points = sorted(os.listdir(osp.join(work, 'search')))
    assert points == ['lr0.01_wd0', 'lr0.01_wd0.0001', 'lr0.1_wd0',
                      'lr0.1_wd0.0001']
    scores = {}
    for point in points:
        run_cfg = Config.fromfile(osp.join(work, 'search', point,
                                           'config.py'))
        lr = run_cfg.optim_wrapper.optimizer.lr
        wd = float(point.split('_wd')[1])
        assert run_cfg.optim_wrapper.optimizer.weight_decay == \
            pytest.approx(wd / lr)  # the paper's wd / lr
        # the search trains on the held-out split's train part and
        # validates on its val part (the same CIFAR training file)
        assert run_cfg.train_dataloader.dataset.part == 'train'
        assert run_cfg.val_dataloader.dataset.part == 'val'
        with open(osp.join(work, 'search', point, 'metrics.json')) as f:
            scores[(lr, wd)] = json.load(f)['accuracy/top1']
    assert result['scores'] == scores
    assert scores[result['best']] == max(scores.values())
    final = Config.fromfile(osp.join(work, 'final', 'config.py'))
    assert final.train_dataloader.dataset.split == 'train'
    assert final.val_dataloader.dataset.split == 'test'
    with open(osp.join(work, 'grid.md')) as f:
        table = f.read()
    best = scores[result['best']]
    assert f'**{best:.2f}**' in table
    assert f"accuracy/top1 {result['test']['accuracy/top1']:.2f}" in table

    # called again: every point is reused, nothing retrains
    logs = sorted(glob.glob(osp.join(work, '*', '*', 'train.log')) +
                  glob.glob(osp.join(work, 'final', 'train.log')))
    stamps = [os.stat(p).st_mtime_ns for p in logs]
    again = tool.main(argv)
    assert again['scores'] == scores and again['best'] == result['best']
    assert [os.stat(p).st_mtime_ns for p in logs] == stamps


def test_grid_points_choice_and_missing_spec(load_tool):
    tool = load_tool('analysis_tools/cls_transfer_grid.py')
    # the paper's grid: 7 lr in [1e-4, 0.1], wd 0 + 7 in [1e-6, 1e-3]
    assert tool.PAPER_LRS == [1e-4, 3.16e-4, 1e-3, 3.16e-3, 0.01, 0.0316,
                              0.1]
    assert tool.PAPER_WDS == [0.0, 1e-6, 3.16e-6, 1e-5, 3.16e-5, 1e-4,
                              3.16e-4, 1e-3]
    scores = {(0.1, 0.0): 50.0, (0.1, 1e-5): 70.0, (0.01, 0.0): 70.0,
              (0.01, 1e-5): 60.0}
    # the highest; a tie goes to the first in grid order
    assert tool.best_point(scores, [0.01, 0.1], [0.0, 1e-5]) == (0.01, 0.0)
    assert tool.best_point(scores, [0.1, 0.01], [0.0, 1e-5]) == (0.1, 1e-5)
    cfg = Config.fromfile(osp.join(
        REPO, 'configs', 'downstream',
        'resnet50-slim-scratch_1xb32-300it_texture-cls.py'))
    with pytest.raises(KeyError, match='grid_search = dict'):
        tool.grid_spec(cfg)
