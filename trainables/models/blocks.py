"""The parts of a network pruning works on: its removable residual blocks and its classifier.

A block is removable when it computes `x + F(x)` (then at most an activation) from its own
input x: its output has its input's shape, so replacing it by the identity changes no width
or resolution. Built-in blocks say so themselves (`removable`, `.branch`); for any other
network (torchvision, timm, the user's) each submodule is traced with torch.fx and kept when
its graph adds its input (directly, or through an identity module: timm's shortcuts) to
anything else, the branch F: a submodule's output, or any computation (a layer scale, a
channel slice), read then from the traced graph (`TracedBranch`).
"""
from __future__ import annotations

import copy
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


def _is_identity_module(node: fx.Node, root: nn.Module) -> bool:
    """A call of a module that returns its input: nn.Identity, or an empty nn.Sequential."""
    if node.op != "call_module":
        return False
    m = root.get_submodule(node.target)
    return isinstance(m, nn.Identity) or (isinstance(m, nn.Sequential) and len(m) == 0)


def _through(node, passes, root: nn.Module):
    while isinstance(node, fx.Node) and passes(node, root) and node.args:
        node = node.args[0]
    return node


class TracedBranch(nn.Module):
    """F(x) of a block whose branch does not end in one submodule call (ConvNeXt's layer scale,
    GhostNet's channel slice): the block's traced graph cut at the add's other operand. It
    shares the block's parameters; a forward hook registered on it sees F(x) whenever the
    block runs (computed again from the block's input, so only scoring pays for it)."""

    def __init__(self, block: nn.Module, graph: fx.GraphModule):
        super().__init__()
        self.graph = graph
        self._block = [block]  # not a child: the block is the network's, not this module's

    def forward(self, x):
        return self.graph(x)

    def register_forward_hook(self, hook, **kwargs):
        def on_block(_module, inputs, _output):
            with torch.no_grad():
                return hook(self, inputs, self.graph(*inputs))
        return self._block[0].register_forward_hook(on_block)


def _cut_at(module: nn.Module, traced: fx.GraphModule, node: fx.Node) -> fx.GraphModule:
    """`module`'s graph returning `node`'s value: what only the rest used is dropped."""
    cut = fx.GraphModule(module, copy.deepcopy(traced.graph))
    end = next(n for n in cut.graph.nodes if n.name == node.name)
    next(n for n in cut.graph.nodes if n.op == "output").args = (end,)
    cut.graph.eliminate_dead_code()
    cut.delete_all_unused_submodules()
    cut.recompile()
    return cut


def residual_branch(module: nn.Module) -> nn.Module | None:
    """What computes F when `module` computes act(x + F(x)) from its own input x (the other
    operand through identity modules): the branch's last submodule where the branch ends in
    one, else a TracedBranch; None when `module` is not such a block."""
    try:
        traced = fx.symbolic_trace(module)
    except Exception:  # data-dependent control flow and the like: not a block we can read
        return None
    graph = traced.graph
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
    a, b = (_through(arg, _is_identity_module, module) for arg in result.args)
    branch = result.args[1] if a is inputs[0] else result.args[0] if b is inputs[0] else None
    # stochastic depth / drop-path functions: the identity in evaluation (a module, such as
    # timm's DropPath or an nn.Identity in its place, is hooked as it is: its output is F(x))
    branch = _through(branch, lambda node, root: _is_regularizer(node), module)
    if not isinstance(branch, fx.Node) or branch is inputs[0]:
        return None
    if branch.op == "call_module":
        return module.get_submodule(branch.target)
    return TracedBranch(module, _cut_at(module, traced, branch))


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
