"""Model registry: where a network comes from (`model.name` = `SOURCE:TARGET` or a built-in
name), its weights, and the parts pruning works on.

Every model takes images in [0, 1] and normalizes them in its first layer, so attacks and
their eps live in pixel space. A new source is one file here with `@model_source(name)`,
imported below.
"""
from . import builtin, python_factory, timm_models, torchvision_models  # noqa: F401  (they register)
from .blocks import ResidualBlock, classifier_layer, removable_blocks, remove_block
from .builtin import BUILTIN_MODELS, BUILTIN_WITH_REMOVABLE_BLOCKS
from .normalize import Normalize, Normalized, inner_network
from .sources import (MODEL_SOURCES, build_model, check_model_name, is_builtin, recorded_normalization,
                      split_model_name)
from .weights import load_weights, read_state_dict

__all__ = ["BUILTIN_MODELS", "BUILTIN_WITH_REMOVABLE_BLOCKS", "MODEL_SOURCES", "Normalize", "Normalized",
           "ResidualBlock", "build_model", "check_model_name", "classifier_layer", "inner_network", "is_builtin", "load_weights",
           "read_state_dict", "recorded_normalization", "removable_blocks", "remove_block", "split_model_name"]
