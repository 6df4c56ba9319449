"""tools/_torchrun.sh (behind dist_train.sh / dist_test.sh) picks the interpreter as make does."""
import os
import os.path as osp
import shutil
import stat
import subprocess

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _stub(path, name):
    """An executable that prints its name and arguments instead of being Python."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(f'#!/bin/sh\necho {name} "$@"\n')
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)


@pytest.fixture
def project(tmp_path):
    """A copy of tools/_torchrun.sh in a project folder, and a PATH whose only ``python`` is a stub."""
    (tmp_path / 'tools').mkdir()
    shutil.copy(osp.join(ROOT, 'tools', '_torchrun.sh'), tmp_path / 'tools' / '_torchrun.sh')
    _stub(str(tmp_path / 'bin' / 'python'), 'path-python')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHON'}
    env['PATH'] = f"{tmp_path / 'bin'}:/usr/bin:/bin"
    return tmp_path, env


def _run(project_dir, env):
    out = subprocess.run(['bash', str(project_dir / 'tools' / '_torchrun.sh'), '2', 'train.py', 'cfg.py'],
                         env=env,
                         capture_output=True,
                         text=True,
                         check=True)
    return out.stdout.split()


def test_uses_project_venv_when_present(project):
    project_dir, env = project
    _stub(str(project_dir / '.venv' / 'bin' / 'python'), 'venv-python')
    words = _run(project_dir, env)
    assert words[:3] == ['venv-python', '-m', 'torch.distributed.run']
    assert '--nproc_per_node=2' in words
    assert words[-4:] == [str(project_dir / 'tools' / 'train.py'), 'cfg.py', '--launcher', 'pytorch']


def test_falls_back_to_python_on_path(project):
    project_dir, env = project
    assert _run(project_dir, env)[0] == 'path-python'


def test_python_variable_wins(project):
    project_dir, env = project
    _stub(str(project_dir / '.venv' / 'bin' / 'python'), 'venv-python')
    _stub(str(project_dir / 'other'), 'chosen-python')
    env['PYTHON'] = str(project_dir / 'other')
    assert _run(project_dir, env)[0] == 'chosen-python'
