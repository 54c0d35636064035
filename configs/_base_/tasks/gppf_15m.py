# The paper's 8 pre-training tasks (GPPF-15M, Section 3.1 and D.1), each a
# stock single-task config of MMDet / MMSeg / MMPretrain: GPPF takes its
# model without the backbone, its dataloaders and its evaluators
# (gppf_mm/engine/task_config.py); below are only what the paper changes.
# Order, sampling weights and per-GPU batch sizes as in D.1: IN21K, COCO,
# LVIS, Objects365, Open Images, ADE20K, COCO-Stuff, VOC: 4.0 / 2.5 / 2.5 /
# 4.0 / 4.0 / 1.0 / 2.0 / 1.0 and 96 / 8 / 8 / 12 / 12 / 8 / 8 / 8.
# Data layouts and converters: docs/dataset_prepare.md.

# ImageNet-21K, the winter-2021 processed release (ImageNet-21K-P: 10,450
# classes, 11M training images): a linear head on global average pooling,
# MMPretrain's Swin data pipeline (RandAugment, Random Erasing 0.25), Mixup
# 0.8, CutMix 1.0, label smoothing 0.1.
in21k_classes = 10450
in21k = dict(
    config='mmpretrain::resnet/resnet50_8xb32_in1k.py',
    data_config='mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    sample_weight=4.0,
    algorithm=dict(
        data_preprocessor=dict(num_classes=in21k_classes),
        head=dict(
            num_classes=in21k_classes,
            loss=dict(
                _delete_=True,
                type='LabelSmoothLoss',
                label_smooth_val=0.1,
                mode='original')),
        train_cfg=dict(augments=[
            dict(type='Mixup', alpha=0.8),
            dict(type='CutMix', alpha=1.0)
        ])),
    train_dataloader=dict(
        batch_size=96,
        dataset=dict(
            type='ImageNet21k', data_root='data/imagenet21k',
            split='train')),
    # MMPretrain's ImageNet21k knows only a 'train' split: the validation
    # images of the release are named by their folder and list
    val_dataloader=dict(
        dataset=dict(
            type='ImageNet21k',
            data_root='data/imagenet21k',
            split='',
            data_prefix='val',
            ann_file='meta/val.txt')),
    test_dataloader=None)

# COCO: Mask R-CNN with 4conv1fc box and mask heads, large-scale jitter at
# 1024 and simple copy-paste (MMDet's simple_copy_paste config).
coco = dict(
    config='mmdet::simple_copy_paste/'
    'mask-rcnn_r50_fpn_rpn-2conv_4conv1fc_syncbn-all_32xb2-ssj-scp-270k_'
    'coco.py',
    sample_weight=2.5,
    train_dataloader=dict(batch_size=8))

# LVIS v1: Mask R-CNN with repeat-factor sampling (threshold 1e-3) and
# LVISMetric (MMDet's LVIS config; its heads are MMDet's 2fc box head).
lvis = dict(
    config='mmdet::lvis/mask-rcnn_r50_fpn_sample1e-3_ms-1x_lvis-v1.py',
    sample_weight=2.5,
    train_dataloader=dict(batch_size=8))

# Objects365 v2 and Open Images (challenge 2019, OpenImagesMetric): Faster
# R-CNN.
objects365 = dict(
    config='mmdet::objects365/faster-rcnn_r50_fpn_16xb4-1x_objects365v2.py',
    sample_weight=4.0,
    train_dataloader=dict(batch_size=12))
# MMDet 3.3's challenge dataset names the group-of flag differently from
# its metric (gppf_mm/datasets/openimages.py); the challenge box files name
# images '<split>/<id>.jpg', so the image prefix is the Open Images folder
# itself (MMDet 2.x's setting; its 3.x config repeats the split folder for
# the train and test sets).
_oi = dict(type='OpenImagesChallenge2019Dataset',
           data_prefix=dict(img='OpenImages/'))
openimages = dict(
    config='mmdet::openimages/'
    'faster-rcnn_r50_fpn_32xb2-1x_openimages-challenge.py',
    sample_weight=4.0,
    train_dataloader=dict(batch_size=12, dataset=_oi),
    val_dataloader=dict(dataset=_oi),
    test_dataloader=dict(dataset=_oi))

# Semantic segmentation: UperNet with an auxiliary FCN head (MMSeg's
# configs; the backbone is GPPF's ResNet, not MMSeg's ResNetV1c, as in the
# paper). COCO-Stuff 164k has no UperNet config upstream: the ADE20K model
# with MMSeg's COCO-Stuff 164k data.
ade20k = dict(
    config='mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py',
    sample_weight=1.0,
    train_dataloader=dict(batch_size=8))
coco_stuff = dict(
    config='mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py',
    data_config='mmseg::_base_/datasets/coco-stuff164k.py',
    sample_weight=2.0,
    algorithm=dict(
        decode_head=dict(num_classes=171),
        auxiliary_head=dict(num_classes=171)),
    train_dataloader=dict(batch_size=8))
voc = dict(
    config='mmseg::upernet/upernet_r50_4xb4-40k_voc12aug-512x512.py',
    sample_weight=1.0,
    train_dataloader=dict(batch_size=8))

tasks = dict(
    in21k=in21k,
    coco=coco,
    lvis=lvis,
    objects365=objects365,
    openimages=openimages,
    ade20k=ade20k,
    coco_stuff=coco_stuff,
    voc=voc)
