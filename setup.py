"""Install mmvit_ext.

``configs/`` (and ``model-index.yml``) are shipped inside the package as ``mmvit_ext/.mim/`` so that a
downstream config can say ``_base_ = 'mmvit_ext::p2t/...'``: copied for a wheel / normal install, linked
for an editable install (``pip install -e .`` runs ``editable_wheel``, older pips run ``develop``).
"""
import os
import os.path as osp
import shutil
import sys
from setuptools import find_packages, setup

ROOT = osp.dirname(osp.abspath(__file__))
MIM_FILES = ('configs', 'model-index.yml')


def get_version():
    scope = {}
    with open(osp.join(ROOT, 'mmvit_ext', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def add_mim_extension():
    """Populate ``mmvit_ext/.mim`` with links (editable) or copies (wheel, sdist, install)."""
    if {'develop', 'editable_wheel'} & set(sys.argv):
        mode = 'symlink'
    elif {'sdist', 'bdist_wheel', 'build', 'install', 'build_py'} & set(sys.argv):
        mode = 'copy'
    else:
        return
    mim_dir = osp.join(ROOT, 'mmvit_ext', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_FILES:
        src, dst = osp.join(ROOT, name), osp.join(mim_dir, name)
        if not osp.exists(src):
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_dir), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst)
        else:
            shutil.copyfile(src, dst)


def parse_requirements(path):
    reqs = []
    with open(osp.join(ROOT, path)) as f:
        for line in f:
            line = line.split('#')[0].strip()
            if line and not line.startswith('-'):
                reqs.append(line)
    return reqs


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmvit_ext',
        version=get_version(),
        description='Vision-transformer backbones (P2T, CMT, HRFormer, token clustering) for OpenMMLab 2.0',
        long_description=open(osp.join(ROOT, 'README.md'), encoding='utf-8').read(),
        long_description_content_type='text/markdown',
        python_requires='>=3.8',
        packages=find_packages(exclude=('configs', 'tools', 'tests', 'docs')),
        include_package_data=True,
        package_data={
            'mmvit_ext':
            ['.mim/model-index.yml', '.mim/configs/**/*.py', '.mim/configs/**/*.yml', '.mim/configs/**/*.md']
        },
        install_requires=parse_requirements('requirements/runtime.txt') + parse_requirements('requirements/torch.txt') +
        parse_requirements('requirements/mminstall.txt'),
        extras_require={'tests': parse_requirements('requirements/tests.txt')},
        zip_safe=False,
    )
