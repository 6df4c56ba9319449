"""Shared test set-up."""
import pytest
import torch

# Model-heavy unit tests run with one intra-op thread: the CI/dev machines have 2 shared cores, where two OpenMP
# threads competing with other processes are up to 50x slower than one.
SINGLE_THREAD_DIRS = ('test_backbones', 'test_converters')


@pytest.fixture
def single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def pytest_collection_modifyitems(items):
    for item in items:
        if any(part in SINGLE_THREAD_DIRS for part in item.path.parts):
            item.add_marker(pytest.mark.usefixtures('single_thread'))
