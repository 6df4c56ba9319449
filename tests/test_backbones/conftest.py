"""One intra-op thread per test: the CI/dev machines have 2 shared cores, where two OpenMP threads competing with
other processes are up to 50x slower than one."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
