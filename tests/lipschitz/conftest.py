"""Shared fixtures of the Lipschitz tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_torch_thread():
    """Tiny convolutions are dominated by thread hand-off cost on a loaded 2-core runner."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
