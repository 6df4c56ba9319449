"""PatchEmbed: the grid follows the conv output for any input size; tokens are row-major and normalised."""
import pytest
import torch
import torch.nn.functional as F

from mmvit_ext.models.layers import PatchEmbed


@pytest.mark.parametrize('kernel, stride, size, expected', [
    (7, 4, (67, 93), (17, 24)),
    (7, 4, (224, 223), (56, 56)),
    (3, 2, (25, 13), (13, 7)),
    (3, 2, (1, 2), (1, 1)),
    (2, 2, (7, 9), (3, 4)),
])
def test_patch_embed_grid_and_values(kernel, stride, size, expected):
    torch.manual_seed(0)
    embed = PatchEmbed(3, 8, kernel_size=kernel, stride=stride, padding=None if kernel > 2 else 0).eval()
    x = torch.randn(2, 3, *size)
    tokens, hw = embed(x)
    assert hw == expected and all(type(s) is int for s in hw)
    assert tokens.shape == (2, expected[0] * expected[1], 8)
    ref = F.conv2d(x, embed.proj.weight, embed.proj.bias, stride=stride, padding=embed.proj.padding)
    ref = F.layer_norm(ref.flatten(2).transpose(1, 2), (8, ), embed.norm.weight, embed.norm.bias, eps=1e-5)
    torch.testing.assert_close(tokens, ref, rtol=1e-5, atol=1e-5)


def test_patch_embed_norm_is_configurable():
    assert PatchEmbed(3, 8, kernel_size=3, stride=2, norm_cfg=dict(type='LN', eps=1e-6)).norm.eps == 1e-6
    assert PatchEmbed(3, 8, kernel_size=3, stride=2, norm_cfg=None).norm is None
    with pytest.raises(TypeError):
        PatchEmbed(3, 8, 3, 2)  # kernel_size and stride are keyword-only


@pytest.mark.parametrize('size, expected', [((7, 9), (4, 5)), ((8, 10), (4, 5)), ((1, 2), (1, 1))])
def test_patch_embed_pad_to_stride_is_ceil_mode(size, expected):
    """Non-overlapping 2x2 embedding (CMT): the bottom/right zero padding gives ceil grids, multiples are untouched."""
    torch.manual_seed(0)
    embed = PatchEmbed(3, 8, kernel_size=2, stride=2, padding=0, pad_to_stride=True, norm_cfg=None)
    x = torch.randn(1, 3, *size)
    tokens, hw = embed(x)
    assert hw == expected
    padded = F.pad(x, (0, -size[1] % 2, 0, -size[0] % 2))
    ref = F.conv2d(padded, embed.proj.weight, embed.proj.bias, stride=2).flatten(2).transpose(1, 2)
    torch.testing.assert_close(tokens, ref)
