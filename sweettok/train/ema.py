"""Exponential moving average of a module's weights (fp32 shadow copy)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class EMA:
    """``shadow = decay * shadow + (1 - decay) * weight`` for every floating-point parameter; buffers copied.

    Works for any ``nn.Module``; the shadow lives in fp32 on the module's device. ``warmup`` uses
    ``min(decay, (1 + n) / (10 + n))`` for the first updates so early averages are not dominated by the
    random initialisation (set ``warmup=False`` for the plain formula).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay, self.warmup, self.updates = decay, warmup, 0
        self.shadow: dict[str, Tensor] = {
            name: p.detach().float().clone() for name, p in model.named_parameters() if p.is_floating_point()
        }

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadow towards the model's current weights."""
        d = self.current_decay()
        for name, p in model.named_parameters():
            if name in self.shadow:
                s = self.shadow[name]
                if s.device != p.device:
                    s = self.shadow[name] = s.to(p.device)
                s.lerp_(p.detach().float(), 1.0 - d)
        self.updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Write the averaged weights into ``model`` (in its own dtype)."""
        for name, p in model.named_parameters():
            if name in self.shadow:
                p.copy_(self.shadow[name].to(device=p.device, dtype=p.dtype))

    def state_dict(self) -> dict:
        return {"decay": self.decay, "warmup": self.warmup, "updates": self.updates,
                "shadow": {k: v.detach().cpu() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.shadow) - set(state["shadow"])
        unexpected = set(state["shadow"]) - set(self.shadow)
        if missing or unexpected:
            raise ValueError(f"EMA state does not match the model: missing {sorted(missing)[:5]}, "
                             f"unexpected {sorted(unexpected)[:5]}")
        self.decay, self.warmup, self.updates = state["decay"], state["warmup"], state["updates"]
        for k, v in state["shadow"].items():
            self.shadow[k] = v.float().to(self.shadow[k].device)
