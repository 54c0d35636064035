# Copyright (c) gppf_mm contributors. All rights reserved.
"""A task is a stock MMDet / MMSeg / MMPretrain config: GPPF takes its model
without the backbone, its dataloaders and evaluators, and the task's own
fields override them; the paper's 8-task config is built from them."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.utils import get_installed_path

from gppf_mm.engine.task_config import expand_tasks
from gppf_mm.engine.task_errors import TaskConfigError
from gppf_mm.engine.upstream_tasks import upstream_task
from gppf_mm.utils import register_all_modules

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
PAPER = osp.join(REPO, 'configs', 'gppf',
                 'gppf_lego-r50-n2-soft_56xb-simt-500k_gppf-15m.py')
COCO = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'


def upstream(path):
    scope, rel = path.split('::')
    return Config.fromfile(osp.join(get_installed_path(scope), '.mim',
                                    'configs', rel))


def test_task_takes_model_without_backbone_loaders_and_evaluators():
    task = upstream_task('coco', dict(config=COCO))
    ref = upstream(COCO)
    expected = ref.model.to_dict()
    del expected['backbone']
    expected['type'] = 'mmdet.MaskRCNN'
    assert task['algorithm'] == expected
    for key in ('train_dataloader', 'val_dataloader', 'val_evaluator',
                'test_dataloader', 'test_evaluator'):
        assert task[key] == ref[key].to_dict(), key


def test_task_fields_override_and_data_config():
    task = upstream_task('coco_stuff', dict(
        config='mmseg::upernet/upernet_r50_4xb4-80k_ade20k-512x512.py',
        data_config='mmseg::_base_/datasets/coco-stuff164k.py',
        algorithm=dict(decode_head=dict(num_classes=171)),
        train_dataloader=dict(batch_size=8), test_dataloader=None))
    data = upstream('mmseg::_base_/datasets/coco-stuff164k.py')
    assert task['algorithm']['type'] == 'mmseg.EncoderDecoder'
    assert 'pretrained' not in task['algorithm']  # the backbone's weights
    assert task['algorithm']['decode_head']['num_classes'] == 171
    assert task['algorithm']['auxiliary_head']['num_classes'] == 150
    assert task['train_dataloader']['batch_size'] == 8
    assert task['train_dataloader']['dataset'] == \
        data.train_dataloader.dataset.to_dict()
    assert task['test_dataloader'] is None
    assert 'test_evaluator' not in task

    # MMPretrain keeps its data preprocessor at the top level of a config
    cls = upstream_task('in1k', dict(
        config='mmpretrain::resnet/resnet50_8xb32_in1k.py'))
    assert cls['algorithm']['data_preprocessor'] == upstream(
        'mmpretrain::resnet/resnet50_8xb32_in1k.py').data_preprocessor


@pytest.mark.parametrize('task, message', [
    (dict(config='mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'),
     r"task 'bad', field 'config': must name an upstream config"),
    (dict(config='mmdet::mask_rcnn/no-such.py'),
     r"task 'bad', field 'config': 'mmdet::mask_rcnn/no-such.py': no such "
     r'config in the installed mmdet'),
    (dict(config=COCO, data_config='mmseg::nope.py'),
     r"task 'bad', field 'data_config'"),
    (dict(config=COCO, algorithm=dict(template='mask_rcnn')),
     r"task 'bad', field 'algorithm.template': a task takes its algorithm "
     r'from `config` or from a template'),
])
def test_bad_upstream_task(task, message):
    with pytest.raises(TaskConfigError, match=message):
        upstream_task('bad', task)


def test_a_wrong_dataset_type_names_the_task_and_library():
    cfg = Config(dict(model=dict(type='GPPF', backbone=dict(
        type='LegoResNet', depth=50)), tasks=dict(coco=dict(
            config=COCO, train_dataloader=dict(dataset=dict(
                type='ADE20KDataset')))),))
    with pytest.raises(TaskConfigError,
                       match=r"task 'coco', field 'train_dataloader.dataset"
                       r".type': 'ADE20KDataset' is not a registered dataset "
                       r'type of mmdet'):
        expand_tasks(cfg)


def test_paper_config_validates_and_builds():
    """The 8 tasks of GPPF-15M in the paper's order, weights and batch
    sizes; the model builds on one CPU process: the heads' SyncBN (mmcv's
    included, which needs a process group to be built) becomes
    TaskLocalBatchNorm."""
    from gppf_mm.models.layers.local_bn import TaskLocalBatchNorm
    from gppf_mm.registry import MODELS
    register_all_modules(init_default_scope=False)
    cfg = expand_tasks(Config.fromfile(PAPER))
    assert list(cfg.model.tasks) == ['in21k', 'coco', 'lvis', 'objects365',
                                     'openimages', 'ade20k', 'coco_stuff',
                                     'voc']
    assert list(cfg.train_cfg.task_weights.values()) == [
        4.0, 2.5, 2.5, 4.0, 4.0, 1.0, 2.0, 1.0]
    assert [cfg.train_dataloader[t].batch_size for t in cfg.model.tasks] == [
        96, 8, 8, 12, 12, 8, 8, 8]
    optim = cfg.optim_wrapper.optimizer
    assert (optim.lr, optim.momentum, optim.weight_decay) == (0.16, 0.9,
                                                              5e-4)
    assert cfg.param_scheduler[0].end == 50000
    assert cfg.train_cfg.max_iters == 500000
    assert cfg.custom_hooks[0].end_ratio == 0.9  # 0.01 reached at 450k
    metrics = {t: e['type'] if isinstance(e, dict) else e[0]['type']
               for t, e in cfg.val_evaluator.items()}
    assert metrics == dict(
        in21k='mmpretrain.Accuracy', coco='mmdet.CocoMetric',
        lvis='mmdet.LVISMetric', objects365='mmdet.CocoMetric',
        openimages='mmdet.OpenImagesMetric', ade20k='mmseg.IoUMetric',
        coco_stuff='mmseg.IoUMetric', voc='mmseg.IoUMetric')
    model = MODELS.build(cfg.model)
    assert type(model.algorithms['coco'].roi_head.bbox_head.shared_convs[0]
                .bn) is TaskLocalBatchNorm
    heads = dict(in21k=10450, lvis=1203, objects365=365, openimages=500)
    assert model.algorithms['in21k'].head.fc.out_features == heads['in21k']
    for task in ('lvis', 'objects365', 'openimages'):
        assert model.algorithms[task].roi_head.bbox_head.num_classes == \
            heads[task]
    assert model.algorithms['coco_stuff'].decode_head.num_classes == 171


def test_dotted_keys_reach_into_lists():
    """Cascade R-CNN's three box heads are a list: a dotted key changes one
    field of each without restating the heads."""
    task = upstream_task('o365', dict(
        config='mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py',
        algorithm={
            **{f'roi_head.bbox_head.{i}.num_classes': 365
               for i in range(3)},
            'neck': dict(in_channels=[96, 192, 384, 768])}))
    ref = upstream('mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py')
    heads = task['algorithm']['roi_head']['bbox_head']
    assert [h['num_classes'] for h in heads] == [365] * 3
    for mine, theirs in zip(heads, ref.model.roi_head.bbox_head):
        assert {k: v for k, v in mine.items() if k != 'num_classes'} == {
            k: v for k, v in theirs.items() if k != 'num_classes'}
    assert task['algorithm']['neck']['in_channels'] == [96, 192, 384, 768]
    assert task['algorithm']['neck']['out_channels'] == 256


PAPER_CONFIGS = sorted(
    glob.glob(osp.join(REPO, 'configs', 'gppf', '*gppf-15m.py')) +
    glob.glob(osp.join(REPO, 'configs', 'gppf', '*_single-*.py')))


@pytest.mark.parametrize('path', PAPER_CONFIGS, ids=osp.basename)
def test_table1_configs_validate(path):
    """Every Table 1 row builds its model; its tasks, backbone and what the
    row changes."""
    cfg = expand_tasks(Config.fromfile(path))
    name = osp.basename(path)
    backbone = cfg.model.backbone
    if name not in (osp.basename(PAPER), 'gppf_lego-swin-t-n2-soft_56xb-'
                    'simt-500k_gppf-15m.py'):  # those two are built below
        from gppf_mm.registry import MODELS
        register_all_modules(init_default_scope=False)
        model = MODELS.build(cfg.model)
        assert list(model.algorithms) == list(cfg.model.tasks)
        assert model.backbone.controller.num_units == \
            cfg.model.backbone.num_units
    if '_single-' in name:
        (task, ) = cfg.model.tasks
        assert name.endswith(f'_single-{task.replace("_", "-")}.py')
        weights = dict(in21k=4, coco=2.5, lvis=2.5, objects365=4,
                       openimages=4, ade20k=1, coco_stuff=2, voc=1)
        assert cfg.train_cfg.max_iters == round(500000 * weights[task] / 21)
        assert backbone.num_units == 1
        return
    assert len(cfg.model.tasks) == 8
    # MMDet's challenge dataset cannot be scored by its metric
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']['openimages']
        dataset = loader['dataset']
        dataset = dataset.get('dataset', dataset)  # TaskDataset wrapper
        assert dataset['type'] == 'OpenImagesChallenge2019Dataset', split
    units = int(name.split('-n')[1][0])
    assert backbone.num_units == units
    assert cfg.model.cross_task_bn == ('local-bn' not in name and
                                       'swin' not in name)
    assert cfg.train_cfg.sampling == ('per_batch' if 'per-batch' in name
                                      else 'simt')
    if 'swin' in name:
        assert backbone.type == 'LegoSwinTransformer'
        assert cfg.optim_wrapper.optimizer.type == 'AdamW'
        assert {cfg.model.tasks[t].algorithm.type for t in (
            'coco', 'lvis', 'objects365', 'openimages')} == {
                'mmdet.CascadeRCNN'}


def test_swin_config_builds():
    from gppf_mm.registry import MODELS
    register_all_modules(init_default_scope=False)
    cfg = expand_tasks(Config.fromfile(osp.join(
        REPO, 'configs', 'gppf',
        'gppf_lego-swin-t-n2-soft_56xb-simt-500k_gppf-15m.py')))
    model = MODELS.build(cfg.model)
    lvis = model.algorithms['lvis'].roi_head
    assert [h.num_classes for h in lvis.bbox_head] == [1203] * 3
    assert lvis.mask_head[0].conv_logits.out_channels == 1203
    assert model.algorithms['ade20k'].decode_head.in_channels == [
        96, 192, 384, 768]


def test_model_index_lists_every_gppf_config():
    """``model-index.yml`` (what ``mim`` reads) imports the GPPF metafile,
    whose every entry points at a config that exists, and every config
    under configs/gppf/ is listed; the paper-scale entries say their
    numbers are the paper's."""
    import yaml
    with open(osp.join(REPO, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    (metafile, ) = index['Import']
    with open(osp.join(REPO, metafile)) as f:
        models = yaml.safe_load(f)['Models']
    listed = {m['Config'] for m in models}
    assert all(osp.isfile(osp.join(REPO, c)) for c in listed)
    shipped = {osp.relpath(p, REPO) for p in glob.glob(
        osp.join(REPO, 'configs', 'gppf', '*.py'))}
    assert listed == shipped
    for m in models:
        if 'gppf-15m' in m['Config'] or '_single-' in m['Config']:
            assert m['Metadata']['Results Source'].startswith(
                "the paper's Table 1")
    n2 = next(m for m in models if m['Name'] ==
              'gppf_lego-r50-n2-soft_56xb-simt-500k_gppf-15m')
    coco = n2['Results'][0]
    assert (coco['Dataset'], coco['Metrics']) == ('COCO', {'box AP': 49.7})
