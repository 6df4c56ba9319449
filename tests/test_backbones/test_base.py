"""BaseViTBackbone: arch validation hook and ``_version`` state-dict migration."""
import pytest
import torch
from toy_backbones import ToyBNChain, ToyBranches  # tests/test_backbones is on sys.path (rootdir conftest)


class RenamedChain(ToyBNChain):
    """Version 2 renamed ``stages.{i}.downsample`` to ``stages.{i}.embed`` (in this test only)."""
    _version = 2
    seen_versions = []

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for stage in self.stages:
            stage.embed = stage.downsample
            del stage.downsample

    def upgrade_state_dict(self, state_dict, prefix, version):
        self.seen_versions.append(version)
        for key in [k for k in state_dict if k.startswith(prefix) and '.downsample.' in k]:
            state_dict[key.replace('.downsample.', '.embed.')] = state_dict.pop(key)

    def forward(self, x):  # not needed here
        raise NotImplementedError


def test_old_version_is_migrated_on_load_and_current_passes_through():
    torch.manual_seed(0)
    old = ToyBNChain().state_dict()  # metadata says version 1
    new = RenamedChain()
    RenamedChain.seen_versions.clear()
    result = new.load_state_dict(old, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert RenamedChain.seen_versions == [1]
    assert torch.equal(new.stages[0].embed.proj.weight, old['stages.0.downsample.proj.weight'])
    current = new.state_dict()
    assert current._metadata['']['version'] == 2
    RenamedChain.seen_versions.clear()
    RenamedChain().load_state_dict(current, strict=True)
    assert RenamedChain.seen_versions == []  # up to date: the hook is not called
    plain = dict(old)  # no metadata (a converter's output): the hook decides
    RenamedChain.seen_versions.clear()
    RenamedChain().load_state_dict(plain, strict=True)
    assert RenamedChain.seen_versions == [None]


def test_validate_arch_hook_runs_for_dicts_and_zoo_entries():
    with pytest.raises(ValueError, match='one entry per branch'):
        ToyBranches(arch={'embed_dims': [8, 16, 32], 'windows': [3, 2]})
    ToyBranches.arch_zoo = dict(ToyBranches.arch_zoo, broken={'embed_dims': [8], 'windows': [3, 2]})
    try:
        with pytest.raises(ValueError, match='one entry per branch'):
            ToyBranches(arch='broken')
    finally:
        del ToyBranches.arch_zoo['broken']
