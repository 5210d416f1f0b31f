"""Fixtures shared by the test files."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch
from helpers import DATA_DIR


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch) -> str:
    """The real data directory (skips when MNIST is not there), exported as VASE_DATA_DIR."""
    if not os.path.isfile(os.path.join(DATA_DIR, "mnist", "t10k-labels-idx1-ubyte.gz")):
        pytest.skip(f"real data not found in {DATA_DIR}")
    monkeypatch.setenv("VASE_DATA_DIR", DATA_DIR)
    return DATA_DIR


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch thread for the test, restored after: deterministic and fast on a shared 2-core machine
    (two OpenMP threads thrash under load). Files opt in with ``pytest.mark.usefixtures``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
