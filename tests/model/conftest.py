"""Shared helpers for the model tests: a fake text encoder with PromptedTextEncoder's contract."""

import pytest
import torch
from torch import nn


class FakeTextEncoder(nn.Module):
    """``forward(class_names) -> (K+1, embed_dim)``: an embedding per known name + background."""

    def __init__(self, vocab=("run", "jump", "swim", "throw", "climb"), embed_dim=16):
        super().__init__()
        self.embed_dim = embed_dim
        self.index = {name: i for i, name in enumerate(vocab)}
        self.names = nn.Embedding(len(vocab), embed_dim)
        self.background = nn.Parameter(torch.randn(embed_dim))
        self.calls = 0

    def forward(self, class_names):
        self.calls += 1
        idx = torch.tensor([self.index[n] for n in class_names], device=self.background.device)
        return torch.cat([self.names(idx), self.background.unsqueeze(0)], dim=0)


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
