# Copyright (c) gppf_mm contributors. All rights reserved.
"""Config errors of a GPPF config are caught before training, with a
message that names the task and the field."""
import copy
import os.path as osp

import pytest
from mmengine.config import Config

from gppf_mm.engine.task_config import (
    TaskConfigError,
    expand_tasks,
    resolve_templates,
    validate_tasks,
)
from gppf_mm.utils import register_all_modules

TEMPLATES = osp.join(
    osp.dirname(__file__), '..', '..', 'configs', '_base_', 'models',
    'gppf_algorithms_slim.py')


def loader(dataset):
    return dict(
        batch_size=2,
        num_workers=0,
        sampler=dict(type='InfiniteSampler', shuffle=True),
        dataset=dataset)


@pytest.fixture
def cfg():
    register_all_modules(init_default_scope=False)
    algorithms = Config.fromfile(TEMPLATES).algorithms
    tasks = dict(
        det=dict(
            algorithm=dict(
                template='mask_rcnn',
                roi_head=dict(
                    bbox_head=dict(num_classes=2),
                    mask_head=dict(num_classes=2))),
            sample_weight=2.0,
            train_dataloader=loader(
                dict(
                    type='CocoDataset',
                    data_root='x',
                    ann_file='a.json',
                    metainfo=dict(classes=('car', 'person')),
                    pipeline=[])),
            val_dataloader=loader(
                dict(type='CocoDataset', ann_file='v.json', pipeline=[])),
            val_evaluator=dict(type='CocoMetric', ann_file='v.json')),
        seg=dict(
            algorithm=dict(
                template='upernet',
                decode_head=dict(num_classes=3),
                auxiliary_head=dict(num_classes=3)),
            train_dataloader=loader(
                dict(
                    type='BaseSegDataset',
                    metainfo=dict(classes=('a', 'b', 'c')),
                    pipeline=[]))),
        cls=dict(
            algorithm=dict(
                template='image_classifier',
                data_preprocessor=dict(num_classes=4),
                head=dict(num_classes=4)),
            train_dataloader=loader(
                dict(
                    type='CustomDataset',
                    metainfo=dict(classes=('w', 'x', 'y', 'z')),
                    pipeline=[]))))
    return Config(
        dict(
            algorithms=algorithms,
            tasks=tasks,
            model=dict(type='GPPF', backbone=dict(type='LegoResNet')),
            train_cfg=dict(type='SIMTTrainLoop', max_iters=10)))


def test_valid_config_expands(cfg):
    out = expand_tasks(cfg)
    assert list(out.model.tasks) == ['det', 'seg', 'cls']
    assert out.model.tasks.det.algorithm.type == 'mmdet.MaskRCNN'
    assert out.model.tasks.det.algorithm.roi_head.bbox_head.num_classes == 2
    # the template's other fields survive the override
    assert out.model.tasks.det.algorithm.roi_head.bbox_head.in_channels == 64
    assert out.train_cfg.task_weights == dict(det=2.0, seg=1.0, cls=1.0)
    assert out.train_dataloader.det.dataset._scope_ == 'mmdet'
    assert out.train_dataloader.seg.dataset._scope_ == 'mmseg'
    assert out.train_dataloader.cls.dataset._scope_ == 'mmpretrain'
    assert list(out.val_dataloader) == ['det']
    assert out.val_evaluator.det.type == 'mmdet.CocoMetric'
    assert out.val_cfg.type == 'MultiTaskValLoop'
    assert out.test_dataloader is None and out.test_cfg is None
    assert out.model_wrapper_cfg.type == 'gppf_mm.GradientFusionWrapper'
    only = expand_tasks(cfg, only=['seg'])
    assert list(only.model.tasks) == ['seg']
    with pytest.raises(TaskConfigError, match=r"unknown task\(s\) \['nope'\]"):
        expand_tasks(cfg, only=['nope'])


def _expect(cfg, match):
    with pytest.raises(TaskConfigError, match=match):
        expand_tasks(cfg)


def test_unknown_algorithm_type(cfg):
    cfg.tasks.det.algorithm = dict(
        template='mask_rcnn', type='mmdet.MaskRCNNN')
    _expect(cfg, r"task 'det', field 'algorithm.type': 'mmdet.MaskRCNNN' "
            r'is not a registered model type of mmdet')


def test_unknown_template(cfg):
    cfg.tasks.seg.algorithm.template = 'upernetx'
    _expect(cfg, r"task 'seg', field 'algorithm.template': unknown template "
            r"'upernetx'")


def test_task_without_dataloader(cfg):
    del cfg.tasks.cls['train_dataloader']
    _expect(cfg, r"task 'cls', field 'train_dataloader': missing")


def test_val_split_needs_evaluator(cfg):
    del cfg.tasks.det['val_evaluator']
    _expect(cfg, r"task 'det', field 'val_evaluator': missing")


def test_sampling_weights(cfg):
    for task in cfg.tasks.values():
        task['sample_weight'] = 0
    _expect(cfg, 'sample_weight values must sum to a positive number')
    cfg.tasks.seg.sample_weight = -1
    _expect(cfg, r"task 'seg', field 'sample_weight': must be a number >= 0")


def test_class_count_disagrees(cfg):
    cfg.tasks.det.algorithm.roi_head.mask_head.num_classes = 80
    _expect(cfg, r"task 'det', field 'algorithm.roi_head.mask_head."
            r"num_classes': num_classes=80 disagrees with the 2 classes")
    cfg.tasks.det.algorithm.roi_head.mask_head.num_classes = 2
    cfg.tasks.cls.algorithm.head.num_classes = 5
    _expect(cfg, r"task 'cls', field 'algorithm.head.num_classes'")


def test_class_count_from_dataset_class(cfg):
    # no metainfo: the dataset class's METAINFO (COCO: 80 classes) counts
    del cfg.tasks.det.train_dataloader.dataset['metainfo']
    _expect(cfg, r'num_classes=2 disagrees with the 80 classes')


def test_unknown_field_and_empty():
    with pytest.raises(TaskConfigError, match='non-empty `tasks`'):
        validate_tasks({})
    tasks = dict(a=dict(algorithm=dict(type='mmdet.MaskRCNN'),
                        train_dataloader=dict(dataset=dict()),
                        smaple_weight=1))
    resolve_templates(tasks, {})
    with pytest.raises(TaskConfigError,
                       match=r"task 'a', field 'smaple_weight': unknown"):
        validate_tasks(copy.deepcopy(tasks))
