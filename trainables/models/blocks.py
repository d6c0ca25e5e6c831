"""The parts of a network pruning works on: its removable residual blocks and its classifier.

A block is removable when it computes `x + F(x)` (then at most an activation) from its own
input x: its output has its input's shape, so replacing it by the identity changes no width
or resolution. Built-in blocks say so themselves (`removable`, `.branch`); for any other
network (torchvision, timm, the user's) each submodule is traced with torch.fx and kept when
its graph adds its input to the output of one of its submodules, the branch F.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import fx, nn

# Activation modules and the function each applies (activation criteria read a layer's output
# through the one that follows it).
ACTIVATION_FUNCTIONS: dict[type[nn.Module], Callable[[torch.Tensor], torch.Tensor]] = {
    nn.ReLU: F.relu, nn.ReLU6: F.relu6, nn.SiLU: F.silu, nn.GELU: F.gelu, nn.Hardswish: F.hardswish,
}
ADDS = {operator.add, operator.iadd, torch.add}
# What a block may apply after x + F(x), as a module or as a traced function.
ACTIVATIONS = (*ACTIVATION_FUNCTIONS, nn.LeakyReLU, nn.Identity)
TRACED_ACTIVATIONS = {*ACTIVATION_FUNCTIONS.values(), torch.relu, F.leaky_relu}
# Functions a traced branch may end in that are the identity in evaluation (torchvision's
# StochasticDepth is traced through to its function).
REGULARIZERS = {"stochastic_depth", "drop_path", "dropout"}
# Modules that never compute x + F(x) themselves: no need to trace them.
LEAVES = (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.Dropout, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
          nn.Flatten) + ACTIVATIONS


@dataclass(frozen=True)
class ResidualBlock:
    module: nn.Module
    branch: nn.Module  # its output is F(x), the residual branch's (what layer criteria score)


def _is_activation(node: fx.Node, root: nn.Module) -> bool:
    if node.op == "call_module":
        return isinstance(root.get_submodule(node.target), ACTIVATIONS)
    if node.op == "call_function":
        return node.target in TRACED_ACTIVATIONS
    return node.op == "call_method" and node.target in ("relu", "relu_")


def _is_regularizer(node: fx.Node) -> bool:
    return (node.op == "call_function" and getattr(node.target, "__name__", "") in REGULARIZERS
            and bool(node.args) and isinstance(node.args[0], fx.Node))


def residual_branch(module: nn.Module) -> nn.Module | None:
    """The submodule computing F when `module` computes act(x + F(x)); else None."""
    try:
        graph = fx.symbolic_trace(module).graph
    except Exception:  # data-dependent control flow and the like: not a block we can read
        return None
    inputs = [n for n in graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        return None
    (result,) = [n for n in graph.nodes if n.op == "output"][0].args
    while isinstance(result, fx.Node) and _is_activation(result, module) and len(result.args) >= 1:
        result = result.args[0]  # act(x + F(x)): look through the activation
    is_add = isinstance(result, fx.Node) and (
        (result.op == "call_function" and result.target in ADDS) or
        (result.op == "call_method" and result.target in ("add", "add_")))
    if not is_add or len(result.args) != 2:
        return None
    a, b = result.args
    branch = b if a is inputs[0] else a if b is inputs[0] else None
    while isinstance(branch, fx.Node) and _is_regularizer(branch):
        branch = branch.args[0]  # stochastic depth / drop-path: the identity in evaluation
    if not isinstance(branch, fx.Node) or branch.op != "call_module":
        return None
    return module.get_submodule(branch.target)


def removable_blocks(model: nn.Module) -> dict[str, ResidualBlock]:
    """Blocks still present in the model that can be dropped without changing shapes."""
    marked = {name: ResidualBlock(m, m.branch) for name, m in model.named_modules() if getattr(m, "removable", False)}
    if marked or any(hasattr(m, "removable") for m in model.modules()):
        return marked  # a built-in network: its blocks are marked
    found = {}
    for name, m in model.named_modules():
        if not name or isinstance(m, LEAVES) or type(m) in (nn.Sequential, nn.ModuleList, nn.ModuleDict):
            continue
        if any(name.startswith(f"{outer}.") for outer in found):
            continue  # inside a block already found
        branch = residual_branch(m)
        if branch is not None:
            found[name] = ResidualBlock(m, branch)
    return found


def remove_block(model: nn.Module, name: str) -> None:
    """Replace a block by identity (its keys leave the state_dict; the rest keep theirs)."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, nn.Identity())


def classifier_layer(model: nn.Module) -> nn.Module:
    """The last Linear layer: its outputs are the classes, so it is never pruned."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
