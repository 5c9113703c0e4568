"""A stand-in text encoder with the PromptedTextEncoder contract, for model tests."""

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
