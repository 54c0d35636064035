# Copyright (c) gppf_mm contributors. All rights reserved.
"""The small transfer table's plan: every row's runs, how each starts its
backbone, and the shortened schedules of the downstream configs."""
import os.path as osp

from mmengine.config import Config

from gppf_mm.apis import iteration_overrides

PRE = ['street_det', 'aerial_det', 'indoor_seg', 'nature_seg', 'shapes_cls']


def test_plan_rows_and_backbone_starts(load_tool):
    tool = load_tool('analysis_tools/transfer_small.py')
    runs = tool.plan_finetunes(['underwater_voc', 'texture_cls'], PRE,
                               [0, 1])
    # scratch, single-task, 5 paths, DyFinetune, retrain; 2 sets x 2 seeds;
    # detection also the street_det path with its neck and heads
    assert len(runs) == 9 * 2 * 2 + 2
    rows = list(dict.fromkeys(r[0] for r in runs))
    assert rows == (['scratch', 'single-task'] +
                    [f'GPPF path {t}' for t in PRE] +
                    ['GPPF path + heads street_det', 'DyFinetune',
                     'DyFinetune + retrain'])
    heads = [r for r in runs if r[0] == 'GPPF path + heads street_det']
    assert [(r[1], r[4]) for r in heads] == [
        ('underwater_voc', ('heads', 'street_det'))] * 2
    for down, spec in tool.DOWNSTREAM.items():
        for kind in ('scratch', 'path', 'dyfinetune', 'retrain'):
            assert osp.isfile(tool.config_path(down, kind)), (down, kind)
        assert spec['source'] in PRE
    single = [r for r in runs if r[0] == 'single-task']
    assert {r[4] for r in single} == {('single', 'street_det'),
                                      ('single', 'shapes_cls')}

    ckpts = {'gppf': 'g.pth', ('single', 'street_det'): 's.pth',
             ('heads', 'street_det'): 'h.pth'}
    assert tool.init_options(None, ckpts, '/w', 'underwater_voc', 0) == []
    assert tool.init_options(('single', 'street_det'), ckpts, '/w',
                             'underwater_voc', 0) == [
        'model.backbone.init_cfg.checkpoint=s.pth',
        'model.backbone.init_cfg.task=street_det']
    assert tool.init_options(('gppf', 'indoor_seg'), ckpts, '/w',
                             'underwater_voc', 1) == [
        'model.backbone.init_cfg.checkpoint=g.pth',
        'model.backbone.init_cfg.task=indoor_seg']
    assert tool.init_options(('heads', 'street_det'), ckpts, '/w',
                             'underwater_voc', 1) == [
        'model.backbone.init_cfg.checkpoint=g.pth',
        'model.backbone.init_cfg.task=street_det', 'load_from=h.pth']
    assert tool.init_options(('dyfinetune', None), ckpts, '/w',
                             'texture_cls', 1) == [
        'model.backbone.init_cfg.checkpoint=g.pth']
    # retrain starts from the path its seed's DyFinetune run wrote
    assert tool.init_options(('retrain', None), ckpts, '/w', 'texture_cls',
                             1) == [
        'model.backbone.init_cfg.checkpoint='
        '/w/texture_cls/dyfinetune_s1/texture_cls_path.pth']


def test_shortened_downstream_schedule_scales_the_lr_steps(load_tool):
    tool = load_tool('analysis_tools/transfer_small.py')
    cfg = Config.fromfile(tool.config_path('underwater_voc', 'scratch'))
    assert cfg.param_scheduler[1].milestones == [400, 550]
    opts = iteration_overrides(cfg, 150)
    # 400 and 550 of 600 -> 100 and 138 (137.5 rounded half to even: 138)
    assert 'param_scheduler.1.milestones=[100,138]' in opts
    assert 'param_scheduler.1.end=150' in opts
    assert 'param_scheduler.0.end=12' in opts  # warm-up 50 of 600


def test_finetune_schedule_keeps_the_warmup_length(load_tool):
    tool = load_tool('analysis_tools/transfer_small.py')
    cfg = Config.fromfile(tool.config_path('underwater_voc', 'scratch'))
    opts = tool.finetune_schedule(cfg, 150)
    # warm-up 50 of 600 stays 50 (scaled it was 12: runs diverged)
    assert 'param_scheduler.0.end=50' in opts
    assert 'param_scheduler.0.end=12' not in opts
    assert 'param_scheduler.1.milestones=[100,138]' in opts
    assert len(opts) == len({o.split('=')[0] for o in opts})
    cfg = Config.fromfile(tool.config_path('town_depth', 'scratch'))
    opts = tool.finetune_schedule(cfg, 60)  # at most a third of the run
    assert 'param_scheduler.0.end=20' in opts
    assert 'param_scheduler.1.begin=20' in opts
    assert 'param_scheduler.1.end=60' in opts
