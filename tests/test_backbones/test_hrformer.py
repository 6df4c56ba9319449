"""HRFormer: official sizes, the profile switches (each changing exactly what it should), odd sizes, errors.

Exactness against the official layout is in tests/test_converters/test_hrformer.py."""
import pytest
import torch

from mmvit_ext.models.backbones import HRFormer
from mmvit_ext.models.backbones.hrformer import PROFILES
from mmvit_ext.utils.errors import ConfigError

TINY_ARCH = dict(channels=[8, 16, 24, 32], num_heads=[1, 2, 3, 4], num_modules=[1, 1, 1, 1], num_blocks=[1, 1, 1, 1],
                 mlp_ratios=[2, 2, 2, 2], window_size=3)  # yapf: disable


def _params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('arch,backbone,pose', [('tiny', 2_572_388, 2_524_436), ('small', 7_891_050, 7_746_218),
                                                ('base', 44_040_666, 43_210_434)])
def test_official_parameter_counts(arch, backbone, pose):
    """Backbone with four outputs, and the pose backbone (the last module fuses only branch 0)."""
    assert _params(HRFormer(arch)) == backbone
    assert _params(HRFormer(arch, out_indices=(0, ))) == pose


def test_layer_settings_follow_the_paper():
    model = HRFormer('small')
    block = model.stages[2].layers[0].branches[1][0]
    assert block.norm1.eps == 1e-6 and block.attn.window_size == (7, 7) and block.attn.num_heads == 2
    assert block.attn.pad_position == 'center' and block.attn.mask_padding is False
    assert block.ffn.fc1.out_channels == 4 * 64 and block.ffn.act3 is not None and block.ffn.norm_first
    assert len(model.stages[2].layers) == 4 and len(model.stages[3].layers) == 2
    assert model.out_channels == (32, 64, 128, 256) and model.out_strides == (4, 8, 16, 32)


def test_drop_path_schedule_is_shared_by_the_branches_of_a_module():
    model = HRFormer('small', drop_path_rate=0.13)
    rates = []
    for stage in model.stages[1:]:
        for layer in stage.layers:
            per_branch = [[blk.drop_path.drop_prob if hasattr(blk.drop_path, 'drop_prob') else 0. for blk in br]
                          for br in layer.branches]
            assert all(r == per_branch[0] for r in per_branch)
            rates += per_branch[0]
    assert len(rates) == 14 and rates[0] == 0. and rates[-1] == pytest.approx(0.13)
    assert rates == pytest.approx(torch.linspace(0, 0.13, 14).tolist())


def _outputs(size, seed=0, **kwargs):
    torch.manual_seed(seed)
    model = HRFormer(TINY_ARCH, **kwargs).eval()
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model(x)


def _same(a, b):
    return all(torch.allclose(x, y, atol=1e-6) for x, y in zip(a, b))


def test_profiles_are_the_documented_presets():
    assert PROFILES['cls'] == dict(with_rpe=True, upsample_mode='nearest', align_corners=True, mask_padding=False)
    assert PROFILES['pose013']['with_rpe'] is False and PROFILES['pose013']['upsample_mode'] == 'bilinear'
    model = HRFormer(TINY_ARCH, profile='pose013', with_rpe=True)
    assert model.switches['with_rpe'] is True and model.switches['align_corners'] is False


def test_align_corners_matters_only_where_the_fusion_resizes():
    """cls profile (nearest upsampling): the bilinear resize runs only for odd sizes."""
    assert _same(_outputs((48, 48)), _outputs((48, 48), align_corners=False))
    assert not _same(_outputs((35, 61)), _outputs((35, 61), align_corners=False))


def test_upsample_mode_changes_the_fusion():
    assert not _same(_outputs((48, 48)), _outputs((48, 48), upsample_mode='bilinear', align_corners=False))


def test_with_rpe_off_builds_no_tables_and_changes_outputs():
    model = HRFormer(TINY_ARCH, with_rpe=False)
    assert not any('relative_position_bias_table' in k for k in model.state_dict())
    assert not _same(_outputs((48, 48)), _outputs((48, 48), with_rpe=False))


@pytest.mark.parametrize('size,changes_true,changes_both', [((48, 48), False, False), ((96, 60), True, False),
                                                            ((35, 61), True, True)])
def test_mask_padding_modes(size, changes_true, changes_both):
    """Windows 3. 48x48: branch maps 12/6/3/2, only the 2x2 one is padded (both axes); 96x60 pads only W (24/12/6/3
    rows); 35x61 pads both axes on most branches. True masks any padding, 'both_axes' (mmpose 1.x) only
    both-axis padding."""
    base = _outputs(size)
    masked, both = _outputs(size, mask_padding=True), _outputs(size, mask_padding='both_axes')
    if size == (48, 48):  # the 2x2 branch is padded on both axes: both modes mask it
        assert not _same(base, masked) and _same(masked, both)
        return
    assert _same(base, masked) is not changes_true
    assert _same(base, both) is not changes_both


@pytest.mark.parametrize('size', [(32, 32), (33, 47), (97, 64)])
def test_any_size_from_32_with_ceil_rounding(size):
    outs = _outputs(size)
    H, W = size
    for b, out in enumerate(outs):
        s = 4 * 2**b
        assert out.shape[2:] == (-(-H // s), -(-W // s)) and out.is_contiguous()


@pytest.mark.parametrize('kwargs,match', [
    (dict(arch='huge'), 'unknown arch'),
    (dict(arch=dict(TINY_ARCH, channels=[8, 16, 24])), 'one entry per branch'),
    (dict(arch=dict(TINY_ARCH, num_heads=[3, 2, 3, 4])), 'not divisible'),
    (dict(arch=dict(TINY_ARCH, num_modules=[2, 1, 1, 1])), 'num_modules\\[0\\] must be 1'),
    (dict(arch=TINY_ARCH, profile='seg'), 'unknown profile'),
    (dict(arch=TINY_ARCH, upsample_mode='bicubic'), 'upsample_mode'),
    (dict(arch=TINY_ARCH, mask_padding='any'), 'mask_padding'),
    (dict(arch=TINY_ARCH, out_indices=(4, )), 'out of range'),
])
def test_bad_arguments_name_the_fix(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        HRFormer(**kwargs)


def test_too_small_input_names_the_minimum():
    with pytest.raises(ValueError, match='at least 32x32 px, got 31x64'):
        HRFormer(TINY_ARCH)(torch.rand(1, 3, 31, 64))


def test_jit_trace_equals_eager():
    model = HRFormer(TINY_ARCH).eval()
    x = torch.randn(1, 3, 35, 61)
    with torch.no_grad():
        traced = torch.jit.trace(model, x, check_trace=False)
        assert _same(traced(x), model(x))
