"""Shared helpers for the model tests: a fake text encoder with PromptedTextEncoder's contract."""

import pytest
import torch

from fake_text import FakeTextEncoder


@pytest.fixture
def fake_text_encoder():
    torch.manual_seed(0)
    return FakeTextEncoder()


@pytest.fixture(autouse=True)
def _single_thread():
    """Tiny tensors: one intra-op thread is faster and immune to a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
