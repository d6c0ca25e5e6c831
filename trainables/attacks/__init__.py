"""Attack registry: torchattacks' attacks, PGD with restarts, worst-case occlusion and the
spatial (rotation + translation) attack. Add an attack with one `ATTACKS` line.

All attacks work in pixel space ([0, 1] images; models normalize inside), so `eps` is in
pixel units. L-inf attacks (fgsm, pgd, bim, square, autoattack) are bounded by
construction. cw and deepfool are minimal-perturbation L2 attacks: unbounded when eps
is None; with an eps, an adversarial image farther than eps (L2) from its source counts
as not found. occlusion's budget is its patch, spatial's its rotation / translation
ranges: neither takes an eps.

Each attack has a parameter model (`AttackInfo.params`) whose defaults are the strong,
published settings (PGD-50 with 5 restarts, CW / DeepFool 50 steps, occlusion at stride 1
with three fills, Engstrom et al.'s spatial grid). `effort` names the knobs that only buy
strength, not budget: `full_strength` raises them to those defaults.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torchattacks
from pydantic import Field
from torch import nn

from ..registry import one_of
from .occlusion import Occlusion, OcclusionParams
from .params import AttackParams
from .pgd import PGDRestarts
from .spatial import Spatial, SpatialParams


class NoParams(AttackParams):
    pass


class IterativeParams(AttackParams):
    steps: int = Field(50, ge=1)
    alpha: float | None = Field(None, gt=0, description="step size; default 2.5 * eps / steps (Madry et al.)")


class PGDParams(IterativeParams):
    restarts: int = Field(5, ge=1)


class CWParams(AttackParams):
    steps: int = Field(50, ge=1)
    c: float = Field(1.0, gt=0)
    kappa: float = Field(0.0, ge=0)
    lr: float = Field(0.01, gt=0)


class DeepFoolParams(AttackParams):
    steps: int = Field(50, ge=1)
    overshoot: float = Field(0.02, ge=0)


class AutoAttackParams(AttackParams):
    version: str = Field("standard", pattern="^(standard|plus|rand)$")


class APGDParams(AttackParams):
    steps: int = Field(100, ge=1, description="Croce & Hein (2020): 100")
    restarts: int = Field(1, ge=1)
    loss: str = Field("dlr", pattern="^(ce|dlr)$", description="dlr: the scale-invariant margin loss that "
                                                                 "sees through masked cross-entropy gradients")


class SquareParams(AttackParams):
    n_queries: int = Field(5000, ge=1)


@dataclass(frozen=True)
class AttackSpec:
    """One attack, resolved: its eps (None where it has no eps budget) and every parameter."""
    name: str
    eps: float | None
    params: dict = field(default_factory=dict)

    def step_size(self) -> float:
        alpha = self.params.get("alpha")
        return alpha if alpha is not None else 2.5 * self.eps / self.params["steps"]

    def record(self) -> dict:
        """Everything that defines what was measured (for metrics.json and MLflow params)."""
        params = dict(self.params)
        if "alpha" in params:
            params["alpha"] = self.step_size()
        return {"name": self.name, "eps": self.eps, **params}


@dataclass(frozen=True)
class AttackInfo:
    make: Callable[[nn.Module, AttackSpec, int, int], torchattacks.attack.Attack]
    norm: str  # linf | l2 | patch | spatial: what bounds the perturbation
    params: type[AttackParams] = NoParams
    effort: dict[str, str] = field(default_factory=dict)  # knob -> "max" | "min" | "union" (stronger is ...)

    @property
    def uses_eps(self) -> bool:
        return self.norm in ("linf", "l2")


ATTACKS: dict[str, AttackInfo] = {
    "fgsm": AttackInfo(lambda m, s, k, seed: torchattacks.FGSM(m, eps=s.eps), "linf"),
    "pgd": AttackInfo(lambda m, s, k, seed: PGDRestarts(
        m, eps=s.eps, alpha=s.step_size(), steps=s.params["steps"], restarts=s.params["restarts"], seed=seed),
        "linf", PGDParams, {"steps": "max", "restarts": "max"}),
    "bim": AttackInfo(lambda m, s, k, seed: torchattacks.BIM(m, eps=s.eps, alpha=s.step_size(),
                                                             steps=s.params["steps"]),
                      "linf", IterativeParams, {"steps": "max"}),
    "cw": AttackInfo(lambda m, s, k, seed: torchattacks.CW(m, **s.params), "l2", CWParams, {"steps": "max"}),
    "deepfool": AttackInfo(lambda m, s, k, seed: torchattacks.DeepFool(m, **s.params), "l2", DeepFoolParams,
                           {"steps": "max"}),
    "autoattack": AttackInfo(lambda m, s, k, seed: torchattacks.AutoAttack(
        m, norm="Linf", eps=s.eps, version=s.params["version"], n_classes=k, seed=seed), "linf", AutoAttackParams),
    "apgd": AttackInfo(lambda m, s, k, seed: torchattacks.APGD(
        m, norm="Linf", eps=s.eps, steps=s.params["steps"], n_restarts=s.params["restarts"], loss=s.params["loss"],
        seed=seed), "linf", APGDParams, {"steps": "max", "restarts": "max"}),
    "square": AttackInfo(lambda m, s, k, seed: torchattacks.Square(
        m, eps=s.eps, n_queries=s.params["n_queries"], seed=seed), "linf", SquareParams, {"n_queries": "max"}),
    "occlusion": AttackInfo(lambda m, s, k, seed: Occlusion(m, **s.params), "patch", OcclusionParams,
                            {"stride": "min", "fills": "union"}),
    "spatial": AttackInfo(lambda m, s, k, seed: Spatial(m, **s.params), "spatial", SpatialParams,
                          {"rotations": "max", "translations": "max"}),
}

_STRONGER = {"max": max, "min": min, "union": lambda a, b: sorted(set(a) | set(b))}


def full_strength(name: str, params: dict) -> dict:
    """The same attack and budget with every effort knob at least at its strong default."""
    info = ATTACKS[name]
    defaults = info.params().model_dump()
    return {**params, **{k: _STRONGER[rule](params[k], defaults[k]) for k, rule in info.effort.items()}}


def _within_l2_budget(adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Keep adversarial images within eps (L2); farther ones fall back to the clean image."""
    far = (adv - x).flatten(1).norm(dim=1) > eps
    adv = adv.clone()
    adv[far] = x[far]
    return adv


def make_attack(model: nn.Module, spec: AttackSpec, num_classes: int, seed: int) -> torchattacks.attack.Attack:
    return ATTACKS[one_of(spec.name, ATTACKS, "attack")].make(model, spec, num_classes, seed)


def adversarial_examples(model: nn.Module, spec: AttackSpec, x: torch.Tensor, y: torch.Tensor,
                         num_classes: int, seed: int) -> torch.Tensor:
    """Adversarial versions of x (same device)."""
    info = ATTACKS[spec.name]
    torch.manual_seed(seed)  # torchattacks draws random starts from the global generator
    attack = make_attack(model, spec, num_classes, seed)
    adv = attack(x, y).detach()
    if info.norm == "l2" and spec.eps is not None:
        adv = _within_l2_budget(adv, x, spec.eps)
    return adv
