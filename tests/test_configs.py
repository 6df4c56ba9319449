"""Every config under configs/ parses, builds its model, wires channels consistently and runs one forward pass.

Detection configs run a loss forward on mmdet's demo inputs (boxes, masks, semantic maps); segmentation and
classification configs a tensor forward. Inputs are small (CPU), so this checks wiring, not accuracy.
"""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmvit_ext  # noqa: F401  (mmvit_ext:: bases)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    if '/_base_/' not in p)


def _build(cfg):
    init_default_scope(cfg.default_scope)
    from mmengine.registry import MODELS
    model = MODELS.build(cfg.model)
    model.eval()
    return model


def test_there_are_configs():
    assert len(CONFIGS) >= 28, CONFIGS


@pytest.mark.parametrize('path', CONFIGS)
def test_config_builds_and_runs(path):
    torch.manual_seed(0)
    cfg = Config.fromfile(osp.join(ROOT, path))
    assert cfg.default_scope in ('mmdet', 'mmseg', 'mmpretrain'), 'keep the host default_scope'
    model = _build(cfg)
    backbone = model.backbone
    assert type(backbone).__module__.startswith('mmvit_ext.'), f'{path}: backbone is not ours'
    channels = list(backbone.out_channels)  # channels of the maps the backbone returns (its out_indices)

    if cfg.default_scope == 'mmdet':
        assert list(model.neck.in_channels) == channels, 'neck.in_channels must equal backbone.out_channels'
        from mmdet.testing import demo_mm_inputs
        with_mask = 'mask_head' in cfg.model.get('roi_head', {})
        with_semantic = 'semantic_head' in cfg.model.get('roi_head', {})
        packed = demo_mm_inputs(batch_size=1, image_shapes=[(3, 128, 160)], num_items=[2], num_classes=80,
                                with_mask=with_mask, with_semantic=with_semantic)
        model.train()
        data = model.data_preprocessor(packed, True)
        losses = model(**data, mode='loss')
        total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v) for k, v in losses.items()
                    if 'loss' in k)
        assert torch.isfinite(total), losses
        if with_mask:
            assert any('mask' in k for k in losses)
    elif cfg.default_scope == 'mmseg':
        head = model.decode_head
        if cfg.model.get('neck'):
            assert list(model.neck.in_channels) == channels
        else:
            assert list(head.in_channels) == channels
        if cfg.model.get('auxiliary_head'):
            aux = model.auxiliary_head
            assert aux.in_channels == channels[aux.in_index], 'auxiliary_head.in_channels'
        with torch.no_grad():
            out = model(torch.randn(1, 3, 128, 160), mode='tensor')
        assert out.shape == (1, head.num_classes, 128 // 4, 160 // 4)
    else:
        assert model.head.in_channels == channels[-1], 'head.in_channels must equal the last backbone output'
        with torch.no_grad():
            logits = model(torch.randn(2, 3, 96, 96), mode='tensor')
        assert logits.shape == (2, model.head.num_classes)
