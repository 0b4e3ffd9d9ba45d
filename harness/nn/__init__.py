"""The NumPy backpropagation engine: layers, initialisers, losses, optimisers, networks."""

from harness.nn.activations import ACTIVATIONS, ActivationFn, get_activation
from harness.nn.containers import ResidualBlock, Sequential
from harness.nn.init import INIT_SCHEMES, canonical_init, init_bias, init_std, init_weight
from harness.nn.layers import Activation, Layer, Linear
from harness.nn.losses import LOSSES, LinearProbe, MSELoss, SoftmaxCrossEntropy, make_loss
from harness.nn.network import NORMS, Network, NetworkSpec, build_network
from harness.nn.norm import BatchNorm, LayerNorm
from harness.nn.optim import SGD, Adam, clip_grad_norm, global_grad_norm, make_optimizer

__all__ = [
    "ACTIVATIONS",
    "INIT_SCHEMES",
    "LOSSES",
    "NORMS",
    "SGD",
    "Activation",
    "ActivationFn",
    "Adam",
    "BatchNorm",
    "Layer",
    "LayerNorm",
    "Linear",
    "LinearProbe",
    "MSELoss",
    "Network",
    "NetworkSpec",
    "ResidualBlock",
    "Sequential",
    "SoftmaxCrossEntropy",
    "build_network",
    "canonical_init",
    "clip_grad_norm",
    "get_activation",
    "global_grad_norm",
    "init_bias",
    "init_std",
    "init_weight",
    "make_loss",
    "make_optimizer",
]
