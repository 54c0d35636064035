# KITTI depth (Table 4) from GPPF-SwinT: the R-50 KITTI config with MMSeg's
# Swin-T (as in its Swin-T UperNet configs) and the paper's stochastic depth
# of 0.4 for finetuning; the BTS head takes Swin-T's 4 stages.
#
# MMSeg's SwinTransformer loads init_cfg['checkpoint'] itself, whatever the
# init type, so the task's path is given as a checkpoint name that gppf_mm
# resolves when it is loaded (gppf_mm.models.backbones.path_uri):
#   tools/dist_train.sh THIS_CONFIG 8 --cfg-options \
#       "model.backbone.init_cfg.checkpoint=gppf-path://GPPF_CHECKPOINT?task=coco&target=mmseg"
_base_ = './bts_r50-gppf-path_8xb4-30k_kitti-eigen-352x704.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        embed_dims=96,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        window_size=7,
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.4,
        use_abs_pos_embed=False,
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        act_cfg=dict(type='GELU'),
        norm_cfg=dict(type='LN', requires_grad=True),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='gppf-path://work_dirs/gppf_swin/latest.pth'
            '?task=coco&target=mmseg')),
    decode_head=dict(in_channels=[96, 192, 384, 768]))
