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
                    pipeline=[dict(type='LoadImageFromFile'),
                              dict(type='PackSegInputs')])),
            val_dataloader=None),
        cls=dict(
            algorithm=dict(
                template='image_classifier',
                data_preprocessor=dict(num_classes=4),
                head=dict(num_classes=4)),
            train_dataloader=loader(
                dict(
                    type='CustomDataset',
                    metainfo=dict(classes=('w', 'x', 'y', 'z')),
                    pipeline=[])),
            val_dataloader=None))
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
    for task, scope in (('det', 'mmdet'), ('seg', 'mmseg'),
                        ('cls', 'mmpretrain')):
        wrapped = out.train_dataloader[task].dataset
        assert wrapped.type == 'gppf_mm.TaskDataset'
        assert wrapped.task == task and wrapped.skip_bad_samples == 0
        assert wrapped.dataset._scope_ == scope
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
    cfg.tasks.seg.sample_weight = 0
    _expect(cfg, r"task 'seg', field 'sample_weight': must be a number > 0")
    cfg.tasks.seg.sample_weight = -1
    _expect(cfg, r"task 'seg', field 'sample_weight': must be a number > 0")


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


def _set(path, value):
    """A mutation that sets ``cfg.tasks.<path>`` (dots and [i])."""

    def mutate(cfg):
        node = cfg.tasks
        keys = path.replace('[', '.').replace(']', '').split('.')
        for key in keys[:-1]:
            node = node[int(key)] if key.isdigit() else node[key]
        last = keys[-1]
        if value is DELETE:
            del node[last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


DELETE = object()
DET_DS = 'det.train_dataloader.dataset'
# (case, mutation, the message's start: task, field and what is wrong)
BAD_CONFIGS = [
    ('missing algorithm', _set('cls.algorithm', DELETE),
     r"task 'cls', field 'algorithm': missing"),
    ('misspelled field', _set('cls.val_dataloder', dict()),
     r"task 'cls', field 'val_dataloder': unknown field"),
    ('algorithm not a dict', _set('cls.algorithm', 'ImageClassifier'),
     r"task 'cls', field 'algorithm': must be a dict"),
    ('algorithm without library', _set('cls.algorithm.type',
                                       'ImageClassifier'),
     r"task 'cls', field 'algorithm.type': 'ImageClassifier' must name its "
     r'library'),
    ('unknown library scope', _set('cls.algorithm.type',
                                   'mmfoo.ImageClassifier'),
     r"task 'cls', field 'algorithm.type': unknown library scope 'mmfoo'"),
    ('dataloader without dataset', _set('seg.train_dataloader.dataset',
                                        DELETE),
     r"task 'seg', field 'train_dataloader.dataset': missing"),
    ('batch size of a wrong type', _set('seg.train_dataloader.batch_size',
                                        '4'),
     r"task 'seg', field 'train_dataloader.batch_size': must be an int >= 1"),
    ('batch size 0', _set('seg.train_dataloader.batch_size', 0),
     r"task 'seg', field 'train_dataloader.batch_size': must be an int >= 1"),
    ('unknown dataset type with metainfo', _set(DET_DS + '.type',
                                                'CocoDatset'),
     r"task 'det', field 'train_dataloader.dataset.type': 'CocoDatset' is not "
     r'a registered dataset type of mmdet'),
    ('unknown dataset type without metainfo', lambda cfg: (
        cfg.tasks.det.train_dataloader.dataset.pop('metainfo'),
        cfg.tasks.det.train_dataloader.dataset.update(type='CocoDatset')),
     r"task 'det', field 'train_dataloader.dataset.type': 'CocoDatset'"),
    ('dataset of another library', _set(DET_DS + '.type', 'ADE20KDataset'),
     r"task 'det', field 'train_dataloader.dataset.type': 'ADE20KDataset' is "
     r'not a registered dataset type of mmdet'),
    ('unknown transform', _set('seg.train_dataloader.dataset.pipeline[1]',
                               dict(type='PackDetInputz')),
     r"task 'seg', field 'train_dataloader.dataset.pipeline\[1\].type': "
     r"'PackDetInputz' is not a registered transform type of mmseg"),
    ('unknown metric type', _set('det.val_evaluator.type', 'CocoMetrc'),
     r"task 'det', field 'val_evaluator.type': 'CocoMetrc' is not a "
     r'registered metric type of mmdet'),
    ('metric of another library', _set('det.val_evaluator.type',
                                       'IoUMetric'),
     r"task 'det', field 'val_evaluator.type': 'IoUMetric' is not a "
     r'registered metric type of mmdet'),
    ('unknown val dataset type', _set('det.val_dataloader.dataset.type',
                                      'CocoDatset'),
     r"task 'det', field 'val_dataloader.dataset.type': 'CocoDatset'"),
    ('val set without evaluator', _set('det.val_evaluator', DELETE),
     r"task 'det', field 'val_evaluator': missing"),
    ('a task with no val set', _set('seg.val_dataloader', DELETE),
     r"task 'seg', field 'val_dataloader': missing: tasks \['det'\] have a "
     r'val set'),
    ('sample weight 0', _set('cls.sample_weight', 0),
     r"task 'cls', field 'sample_weight': must be a number > 0"),
    ('negative sample weight', _set('cls.sample_weight', -2.5),
     r"task 'cls', field 'sample_weight': must be a number > 0"),
    ('sample weight of a wrong type', _set('cls.sample_weight', '2'),
     r"task 'cls', field 'sample_weight': must be a number > 0"),
    ('negative loss weight', _set('cls.loss_weight', -1),
     r"task 'cls', field 'loss_weight': must be a number >= 0"),
    ('class count', _set('cls.algorithm.head.num_classes', 5),
     r"task 'cls', field 'algorithm.head.num_classes': num_classes=5 "
     r'disagrees with the 4 classes'),
]


@pytest.mark.parametrize('mutate, message', [c[1:] for c in BAD_CONFIGS],
                         ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_table(cfg, mutate, message):
    """Every case fails in expand_tasks, before any data is read (the data
    paths do not exist), with a message naming the task and the field."""
    expand_tasks(copy.deepcopy(cfg))  # the unchanged config is valid
    mutate(cfg)
    _expect(cfg, '^' + message)


DEMO = osp.join(
    osp.dirname(__file__), '..', '..', 'configs', 'gppf',
    'gppf_lego-r50-slim-n2-soft_2xb-simt-450it_gppf-bench.py')
DEMO_RESOLVED = osp.join(
    osp.dirname(__file__), '..', 'data', 'demo_tasks_resolved.json')


def test_demo_tasks_equal_the_hand_written_templates():
    """The demo's templates name upstream configs (mmdet / mmseg /
    mmpretrain) and write only the slim sizes; every resolved task (model,
    dataloaders, evaluators) equals the one the hand-written templates
    gave, saved in tests/data/demo_tasks_resolved.json."""
    import json
    cfg = expand_tasks(Config.fromfile(DEMO))
    tasks = json.loads(json.dumps(
        {k: v.to_dict() for k, v in cfg.tasks.items()}, default=str))
    with open(DEMO_RESOLVED) as f:
        expected = json.load(f)
    assert sorted(tasks) == sorted(expected)
    for name in expected:
        assert tasks[name] == expected[name], name
    # the slim sizes come from the templates, the rest from upstream
    det = tasks['street_det']['algorithm']
    assert det['roi_head']['mask_head']['num_convs'] == 2
    assert det['roi_head']['bbox_head']['loss_bbox'] == dict(
        type='L1Loss', loss_weight=1.0)


def test_template_naming_a_missing_upstream_config(cfg):
    algorithms = Config.fromfile(TEMPLATES).algorithms
    algorithms.upernet.config = 'mmseg::upernet/no-such-config.py'
    with pytest.raises(TaskConfigError,
                       match=r"task 'seg', field 'algorithms.upernet.config "
                       r"\(its template\)': 'mmseg::upernet/no-such"):
        resolve_templates(cfg.tasks, algorithms)
