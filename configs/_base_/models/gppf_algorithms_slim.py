# Per-task algorithm templates for a slim lego ResNet-50 (base_channels=16:
# stage widths 64/128/256/512). Tasks pick one with
# `algorithm=dict(template=NAME, <overrides>)`. Each template is a stock
# MMDet / MMSeg / MMPretrain config's model without its backbone (GPPF
# shares one), with only what the slim sizes change written here.
stage_channels = [64, 128, 256, 512]
norm_cfg = dict(type='BN', requires_grad=True)

algorithms = dict(
    # Mask R-CNN, narrowed to 64-channel FPN features, smaller anchors for
    # the benchmark's 128-256 px images and fewer proposals and samples
    mask_rcnn=dict(
        config='mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
        neck=dict(in_channels=stage_channels, out_channels=64),
        rpn_head=dict(
            in_channels=64,
            feat_channels=64,
            anchor_generator=dict(scales=[4])),
        roi_head=dict(
            bbox_roi_extractor=dict(out_channels=64),
            bbox_head=dict(in_channels=64, fc_out_channels=128),
            mask_roi_extractor=dict(out_channels=64),
            mask_head=dict(
                num_convs=2, in_channels=64, conv_out_channels=64)),
        train_cfg=dict(
            rpn=dict(sampler=dict(num=128)),
            rpn_proposal=dict(nms_pre=1000, max_per_img=500),
            rcnn=dict(sampler=dict(num=128))),
        test_cfg=dict(
            rpn=dict(nms_pre=500, max_per_img=300),
            rcnn=dict(max_per_img=50))),
    # UperNet + FCN auxiliary head, narrowed, with BN in place of SyncBN
    # (cross-task BN is the backbone's; the heads are per task) and 64 px
    # crops
    upernet=dict(
        config='mmseg::upernet/upernet_r50_4xb4-80k_ade20k-512x512.py',
        data_preprocessor=dict(size=(64, 64)),
        decode_head=dict(
            in_channels=stage_channels, channels=64, norm_cfg=norm_cfg),
        auxiliary_head=dict(
            in_channels=stage_channels[2], channels=32,
            norm_cfg=norm_cfg)),
    # a linear head on global average pooling, on 512 channels
    image_classifier=dict(
        config='mmpretrain::resnet/resnet50_8xb32_in1k.py',
        # the type ImageClassifier assumes when the config names none
        data_preprocessor=dict(type='ClsDataPreprocessor'),
        head=dict(in_channels=stage_channels[3])),
)
