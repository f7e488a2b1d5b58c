"""Seeded float64 weights for the tracer's tiny test networks (shared by the tracer tests)."""

from __future__ import annotations

import math

import torch
from torch import nn

F64 = torch.float64


def seeded_float64(model: nn.Module, seed: int, bias_std: float = 0.1) -> nn.Module:
    """He-style weights, small random biases, random eval-mode BatchNorm statistics; float64."""
    g = torch.Generator().manual_seed(seed)
    model = model.to(F64)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=g)
                if m.bias is not None:
                    m.bias.normal_(0.0, bias_std, generator=g)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.running_mean.copy_(0.3 * torch.randn(n, generator=g, dtype=F64))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=g, dtype=F64))
                m.weight.copy_(1.0 + 0.2 * torch.randn(n, generator=g, dtype=F64))
                m.bias.copy_(0.1 * torch.randn(n, generator=g, dtype=F64))
    return model.eval()
