# The 8 GPPF-15M tasks for GPPF-SwinT (D.1): the same data, heads fed by
# Swin-T's stage widths (96 / 192 / 384 / 768), and Cascade R-CNN for the 4
# detection tasks (MMDet's Cascade (Mask) R-CNN configs, each with its
# dataset's data and classes: MMDet ships no Swin Cascade config).
_base_ = './gppf_15m.py'

swin_channels = [96, 192, 384, 768]
_fpn = dict(neck=dict(in_channels=swin_channels))


def _cascade(num_classes, mask=False):
    """Overrides of a Cascade (Mask) R-CNN config: Swin's widths and the
    classes of each of its 3 box heads (and of its mask head)."""
    algorithm = dict(
        _fpn, **{
            f'roi_head.bbox_head.{i}.num_classes': num_classes
            for i in range(3)
        })
    if mask:
        algorithm['roi_head'] = dict(mask_head=dict(num_classes=num_classes))
    return algorithm


_cascade_mask = 'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py'
_cascade_box = 'mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py'
_uper = dict(
    decode_head=dict(in_channels=swin_channels),
    auxiliary_head=dict(in_channels=swin_channels[2]))
tasks = dict(
    in21k=dict(algorithm=dict(head=dict(in_channels=swin_channels[3]))),
    coco=dict(
        _delete_=True,
        config=_cascade_mask,
        data_config={{_base_.coco.config}},
        sample_weight=2.5,
        algorithm=_cascade(80, mask=True),
        train_dataloader=dict(batch_size=8)),
    lvis=dict(
        _delete_=True,
        config=_cascade_mask,
        data_config={{_base_.lvis.config}},
        sample_weight=2.5,
        algorithm=_cascade(1203, mask=True),
        train_dataloader=dict(batch_size=8)),
    objects365=dict(
        _delete_=True,
        config=_cascade_box,
        data_config={{_base_.objects365.config}},
        sample_weight=4.0,
        algorithm=_cascade(365),
        train_dataloader=dict(batch_size=12)),
    openimages=dict(
        _delete_=True,
        config=_cascade_box,
        data_config={{_base_.openimages.config}},
        sample_weight=4.0,
        algorithm=_cascade(500),
        # the dataset and image prefix of gppf_15m.py's Open Images task
        train_dataloader=dict(batch_size=12, dataset={{_base_._oi}}),
        val_dataloader=dict(dataset={{_base_._oi}}),
        test_dataloader=dict(dataset={{_base_._oi}})),
    ade20k=dict(algorithm=_uper),
    coco_stuff=dict(algorithm=_uper),
    voc=dict(algorithm=_uper))
