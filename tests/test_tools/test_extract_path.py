# Copyright (c) gppf_mm contributors. All rights reserved.
import pytest
import torch
from mmdet.models.backbones import ResNet as MMDetResNet
from mmengine.config import Config
from mmpretrain.models.backbones import ResNetV1d as MMPretrainResNetV1d

from gppf_mm.models.backbones import LegoResNet

BACKBONE = dict(type='LegoResNet', depth=50, base_channels=16,
                stem_channels=16, num_units=2, routing_mode='soft',
                norm_eval=False, init_cfg=None)
TASKS = ['street_det', 'indoor_seg']


def gppf_checkpoint(tmp_path, with_cfg=True, **backbone):
    """A file shaped like a GPPF runner checkpoint: the lego backbone under
    'backbone.', other weights beside it, the config text in meta."""
    cfg = dict(BACKBONE, **backbone)
    torch.manual_seed(0)
    lego = LegoResNet(tasks=TASKS, **{
        k: v for k, v in cfg.items() if k != 'type'})
    with torch.no_grad():
        for task in TASKS:
            lego.controller.logits[task].normal_()
    state = {f'backbone.{k}': v for k, v in lego.state_dict().items()}
    state['algorithms.street_det.neck.conv.weight'] = torch.zeros(2)
    meta = dict(iter=600)
    if with_cfg:
        meta['cfg'] = Config(dict(
            model=dict(type='GPPF', backbone=cfg, cross_task_bn=True),
            tasks={t: dict(sample_weight=1.0) for t in TASKS})).pretty_text
    path = tmp_path / 'iter_600.pth'
    torch.save(dict(state_dict=state, meta=meta), path)
    return str(path), lego.eval()


@pytest.fixture(scope='module')
def tool(load_tool):
    return load_tool('extract_path.py')


def test_bad_arguments(tool, tmp_path):
    ckpt, _ = gppf_checkpoint(tmp_path)
    out = str(tmp_path / 'out.pth')
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        tool.main([str(tmp_path / 'missing.pth'), '--task', 'a', '--out',
                   out])
    # the stored config text lists the tasks in its own order
    with pytest.raises(KeyError, match=r"unknown task 'coco'; the controller "
                       r"knows the tasks \['indoor_seg', 'street_det'\]"):
        tool.main([ckpt, '--task', 'coco', '--out', out])
    with pytest.raises(ValueError, match='path has 2 entries, the backbone '
                       'has 17 lego layers'):
        tool.main([ckpt, '--path', '0,1', '--out', out])
    with pytest.raises(ValueError, match="comma-separated unit indices, got "
                       "'0,x'"):
        tool.main([ckpt, '--path', '0,x', '--out', out])
    with pytest.raises(SystemExit, match='give --task NAME or --path'):
        tool.main([ckpt, '--out', out])
    bare, _ = gppf_checkpoint(tmp_path, with_cfg=False)
    with pytest.raises(ValueError, match=r'no config in meta\["cfg"\]|'
                       r'stores no config.*--config'):
        tool.main([bare, '--task', 'street_det', '--out', out])
    wrong = tmp_path / 'wrong_cfg.py'
    wrong.write_text('model = dict(backbone=dict(type="LegoResNet", '
                     'depth=18, num_units=2))\ntasks = dict(street_det=1, '
                     'indoor_seg=2)\n')
    with pytest.raises(RuntimeError, match='do not fit the lego backbone'):
        tool.main([bare, '--task', 'street_det', '--out', out, '--config',
                   str(wrong)])


def test_extract_task_path_into_stock_mmdet_resnet(tool, tmp_path, capsys):
    ckpt, lego = gppf_checkpoint(tmp_path)
    out = tmp_path / 'paths' / 'street_det_r50.pth'
    result = tool.main([ckpt, '--task', 'street_det', '--out', str(out)])
    printed = capsys.readouterr().out
    path = lego.resolve_path(task='street_det')
    probs = lego.selection_probabilities()[0]
    assert result['meta']['path'] == path
    assert result['meta']['layers'][:2] == ['Stem', 'Res2.0']
    table = printed.splitlines()
    assert table[1].split() == ['layer', 'unit', 'probability']
    assert table[2].split() == ['Stem', str(path[0]),
                                f'{float(probs[0, path[0]]):.4f}']
    assert table[18].split()[:2] == ['Res5.2', str(path[16])]
    assert 'plain backbone' in printed

    # a stock OpenMMLab backbone initialised from the file
    plain = MMDetResNet(
        **{k: v for k, v in BACKBONE.items() if k in
           ('depth', 'base_channels', 'stem_channels', 'norm_eval')},
        init_cfg=dict(type='Pretrained', checkpoint=str(out),
                      prefix='backbone.'))
    plain.init_weights()
    plain.eval()
    lego.set_task('street_det')
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(lego(x), plain(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_explicit_path_config_and_mmpretrain_target(tool, tmp_path):
    ckpt, lego = gppf_checkpoint(tmp_path, with_cfg=False, deep_stem=True,
                                 avg_down=True)
    config = tmp_path / 'gppf_cfg.py'
    config.write_text(Config(dict(
        model=dict(type='GPPF', backbone=dict(
            BACKBONE, deep_stem=True, avg_down=True)),
        tasks={t: dict() for t in TASKS})).pretty_text)
    path = [1] * 17
    out = tmp_path / 'ones.pth'
    result = tool.main([ckpt, '--path', ','.join(map(str, path)), '--out',
                        str(out), '--target', 'mmpretrain', '--config',
                        str(config), '--backbone-prefix', 'backbone.'])
    assert result['meta']['task'] is None
    assert result['meta']['backbone_cfg']['type'] == 'mmpretrain.ResNet'
    saved = torch.load(out)
    assert set(saved) == {'state_dict', 'meta'}
    plain = MMPretrainResNetV1d(depth=50, base_channels=16, stem_channels=16,
                                out_indices=(0, 1, 2, 3))
    plain.load_state_dict(
        {k[len('backbone.'):]: v for k, v in saved['state_dict'].items()},
        strict=True)
    plain.eval()
    torch.testing.assert_close(plain.layer4[2].conv3.weight,
                               lego.layer4[2].units[1].conv3.weight)
    with torch.no_grad():
        lego.controller.logits['indoor_seg'].fill_(0)[:, 1] = 1
    lego.set_task('indoor_seg')
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        for a, b in zip(lego(x), plain(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_with_heads_starts_a_downstream_detector(tool, tmp_path):
    """--with-heads: the pre-training task's Mask R-CNN neck and heads go
    into the downstream Faster R-CNN (other classes) with ``load_from``,
    except the layers that predict the task's own classes."""
    import os.path as osp

    from mmdet.registry import MODELS as MMDET_MODELS
    from mmengine.runner import load_checkpoint

    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    algos = Config.fromfile(osp.join(
        repo, 'configs', '_base_', 'models', 'gppf_algorithms_slim.py'))
    from gppf_mm.engine.task_config import resolve_templates
    tasks = dict(det=dict(algorithm=dict(template='mask_rcnn')))
    resolve_templates(tasks, algos.algorithms)
    mask_cfg = dict(tasks['det']['algorithm'], type='MaskRCNN',
                    backbone=dict(type='ResNet', depth=50, base_channels=16))
    torch.manual_seed(1)
    # built in MMDet's scope without changing the process's default scope
    mask_rcnn = MMDET_MODELS.build(dict(mask_cfg, _scope_='mmdet'))
    ckpt, _ = gppf_checkpoint(tmp_path)
    saved = torch.load(ckpt, weights_only=False)
    saved['state_dict'].update({
        f'algorithms.street_det.{k}': v
        for k, v in mask_rcnn.state_dict().items()
        if not k.startswith('backbone.')})
    torch.save(saved, ckpt)

    out = str(tmp_path / 'street_det_detector.pth')
    with pytest.raises(SystemExit, match='--with-heads needs --task'):
        tool.main([ckpt, '--path', ','.join(['0'] * 17), '--with-heads',
                   '--out', out])
    with pytest.raises(KeyError, match=r"task 'indoor_seg'.*\['street_det'"):
        tool.main([ckpt, '--task', 'indoor_seg', '--with-heads', '--out',
                   out])
    result = tool.main([ckpt, '--task', 'street_det', '--with-heads',
                        '--out', out])
    assert result['meta']['heads']['excluded'] == [
        'roi_head.bbox_head.fc_cls.bias', 'roi_head.bbox_head.fc_cls.weight',
        'roi_head.bbox_head.fc_reg.bias', 'roi_head.bbox_head.fc_reg.weight',
        'roi_head.mask_head.conv_logits.bias',
        'roi_head.mask_head.conv_logits.weight']

    down = Config.fromfile(osp.join(
        repo, 'configs', '_base_', 'downstream',
        'faster-rcnn_r50-slim_underwater-voc.py'))
    torch.manual_seed(2)
    faster = MMDET_MODELS.build(dict(down.model, _scope_='mmdet'))
    before = {k: v.clone() for k, v in faster.state_dict().items()}
    load_checkpoint(faster, out, strict=False)
    after = faster.state_dict()
    theirs = mask_rcnn.state_dict()
    for key, value in after.items():
        if key.startswith('backbone.'):
            assert torch.equal(value, result['state_dict'][key]), key
        elif '.fc_cls.' in key or '.fc_reg.' in key:
            assert torch.equal(value, before[key]), key  # 4 classes: own
        else:  # neck, RPN, RoI extractor and shared fcs: pre-trained
            assert torch.equal(value, theirs[key]), key

    # --heads-only: the same neck and heads, and the backbone keeps what it
    # was initialised with
    heads_only = str(tmp_path / 'street_det_heads.pth')
    only = tool.main([ckpt, '--task', 'street_det', '--heads-only', '--out',
                      heads_only])
    assert only['meta']['heads'] == result['meta']['heads']
    assert sorted(only['state_dict']) == sorted(
        k for k in result['state_dict'] if not k.startswith('backbone.'))
    torch.manual_seed(2)
    faster = MMDET_MODELS.build(dict(down.model, _scope_='mmdet'))
    load_checkpoint(faster, heads_only, strict=False)
    for key, value in faster.state_dict().items():
        expected = theirs[key] if key in only['state_dict'] else before[key]
        assert torch.equal(value, expected), key
