"""The final evaluation on the test split (never used for selection), in fixed-size parts.

The seeded test subset is cut into parts of TEST_PART_SIZE images, in order; each part
gets the whole final suite and the robustness curve, and the parts' per-image results are
joined. Parts are what a cluster spreads over its workers (search/driver/final_eval.py), and
their size never depends on how many workers there are, so a model's test numbers are the
same wherever and however it is measured (`robustprune trial` runs the parts in turn).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from .attacks import ATTACKS
from .attacks.evaluation import Robustness, evaluate_robustness
from .config import TrialConfig, settings_key
from .data import Dataset, Split

TEST_PART_SIZE = 250


@dataclass
class FinalEvalPart:
    """Per-image results of one part: the final suite, and robust-or-not at each eps of the curve."""
    suite: Robustness
    curve: dict[float, torch.Tensor]


def final_eval_images(data: Dataset, cfg: TrialConfig) -> Split:
    return data.test.subset(cfg.test_size or len(data.test), cfg.seeds()["test_subset"])


def part_count(cfg: TrialConfig) -> int:
    return -(-cfg.test_eval_size() // TEST_PART_SIZE)


def evaluate_test_part(model: nn.Module, data: Dataset, cfg: TrialConfig, device: torch.device,
                       part: int) -> FinalEvalPart:
    test = final_eval_images(data, cfg)
    lo = part * TEST_PART_SIZE
    images = test.slice(lo, lo + TEST_PART_SIZE)
    seed = cfg.seeds()["attacks"]
    specs = cfg.final_attack_specs()
    suite = evaluate_robustness(model, specs, images, data.num_classes, device, seed)
    linf = [s for s in specs if ATTACKS[s.name].norm == "linf"]
    curve = {}
    for eps in cfg.eps_grid if linf else []:
        at_eps = [replace(s, eps=eps) for s in linf]
        curve[eps] = suite.robust if at_eps == specs else evaluate_robustness(  # the suite itself: measured above
            model, at_eps, images, data.num_classes, device, seed, per_attack=False).robust
    return FinalEvalPart(suite, curve)


def join_test_parts(parts: list[FinalEvalPart]) -> dict:
    """`test_*` metrics and `robustness_curve` over all the parts, in part order."""
    suite = Robustness(torch.cat([p.suite.clean for p in parts]), torch.cat([p.suite.robust for p in parts]),
                       {name: torch.cat([p.suite.per_attack[name] for p in parts])
                        for name in parts[0].suite.per_attack})
    curve = [{"eps": eps, "test_robust_acc": Robustness.fraction(torch.cat([p.curve[eps] for p in parts]))}
             for eps in parts[0].curve]
    return {"test_clean_acc": suite.clean_acc(), **suite.metrics("test_"), "robustness_curve": curve}


def final_evaluation(model: nn.Module, data: Dataset, cfg: TrialConfig, device: torch.device) -> dict:
    """The test split, part after part: the final suite on `test_size` images (`test_*`
    metrics) and, over `eps_grid`, the robustness curve of its L-inf attacks."""
    return join_test_parts([evaluate_test_part(model, data, cfg, device, k) for k in range(part_count(cfg))])


def final_eval_key(cfg: TrialConfig) -> str:
    """Everything besides the model that changes its final evaluation, hashed."""
    return settings_key({"final_attacks": [s.record() for s in cfg.final_attack_specs()],
                         "test_size": cfg.test_eval_size(), "eps_grid": list(cfg.eps_grid),
                         "eval_transform": cfg.resolved_transforms.record()["eval"],
                         "seeds": [cfg.seeds()["test_subset"], cfg.seeds()["attacks"]], "part_size": TEST_PART_SIZE})
