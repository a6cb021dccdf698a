"""Shared fixtures: small torch models and timm models with random init (built once)."""

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TIMM_MODELS = ("vit_tiny_patch16_224", "deit_tiny_patch16_224", "resnet18", "convnext_atto")


class TinyNet(torch.nn.Module):
    """conv stem -> depthwise conv -> 1x1 conv -> linear head (every selector branch)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = torch.nn.Conv2d(8, 16, 1)
        self.fc1 = torch.nn.Linear(16, 12)
        self.head = torch.nn.Linear(12, 4)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(self.dw(x))
        x = torch.relu(self.pw(x)).mean(dim=(2, 3))
        return self.head(torch.relu(self.fc1(x)))


@pytest.fixture
def tiny_net():
    return TinyNet()


_CACHE: dict = {}


@pytest.fixture(scope="session")
def timm_model():
    """Factory returning a cached timm model (random init, no download)."""
    timm = pytest.importorskip("timm")

    def make(name):
        if name not in _CACHE:
            torch.manual_seed(0)
            _CACHE[name] = timm.create_model(name, pretrained=False).eval()
        return _CACHE[name]

    return make
