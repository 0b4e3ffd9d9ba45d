"""Optimisers: each update against its formula, clipping, and a network that learns."""

import math

import numpy as np
import pytest

from harness.nn import (
    SGD,
    Adam,
    MSELoss,
    NetworkSpec,
    build_network,
    clip_grad_norm,
    global_grad_norm,
    make_optimizer,
)


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return [
        ("a", rng.standard_normal((3, 2)), rng.standard_normal((3, 2))),
        ("b", rng.standard_normal(4), rng.standard_normal(4)),
    ]


def test_sgd_step():
    params = _params()
    before = [p.copy() for _, p, _ in params]
    SGD(params, lr=0.1).step()
    for (_, p, g), p0 in zip(params, before, strict=True):
        np.testing.assert_allclose(p, p0 - 0.1 * g, rtol=1e-15)


def test_momentum_matches_recursion():
    params = _params()
    p0, g = params[0][1].copy(), params[0][2]
    opt = SGD(params, lr=0.1, momentum=0.9)
    v, p = np.zeros_like(p0), p0.copy()
    for _ in range(3):
        opt.step()
        v = 0.9 * v + g
        p = p - 0.1 * v
    np.testing.assert_allclose(params[0][1], p, rtol=1e-14)


def test_adam_matches_textbook_formula():
    params = _params()
    p, g = params[1][1].copy(), params[1][2]
    opt = Adam(params, lr=0.01)
    m, s = np.zeros_like(p), np.zeros_like(p)
    for t in range(1, 4):
        opt.step()
        m = 0.9 * m + 0.1 * g
        s = 0.999 * s + 0.001 * g * g
        p = p - 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(s / (1 - 0.999**t)) + 1e-8)
    np.testing.assert_allclose(params[1][1], p, rtol=1e-12)


def test_clipping_scales_to_max_norm_and_keeps_direction():
    params = _params()
    g0 = [g.copy() for _, _, g in params]
    norm = global_grad_norm(params)
    assert clip_grad_norm(params, 0.5) == pytest.approx(norm)
    assert global_grad_norm(params) == pytest.approx(0.5)
    for (_, _, g), before in zip(params, g0, strict=True):
        np.testing.assert_allclose(g, before * 0.5 / norm)
    # below the bound nothing changes
    assert clip_grad_norm(params, 10.0) == pytest.approx(0.5)
    assert global_grad_norm(params) == pytest.approx(0.5)


def test_step_returns_norm_and_clips_before_update():
    params = _params()
    before = params[0][1].copy()
    norm = global_grad_norm(params)
    assert SGD(params, lr=1.0, clip_norm=1.0).step() == pytest.approx(norm)
    assert np.linalg.norm(params[0][1] - before) <= 1.0 + 1e-12


@pytest.mark.parametrize(("name", "lr"), [("sgd", 0.05), ("momentum", 0.02), ("adam", 0.01)])
def test_teacher_student_regression_learns(name, lr):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 8))
    teacher = rng.standard_normal((8, 2)) / math.sqrt(8)
    y = np.tanh(x @ teacher)
    net = build_network(
        NetworkSpec(
            input_dim=8, width=32, depth=2, output_dim=2, activation="tanh", init="xavier_normal", seed=1
        )
    )
    loss = MSELoss()
    opt = make_optimizer(name, net.parameters(), lr)
    first = loss.forward(net.forward(x), y)
    for _ in range(300):
        loss.forward(net.forward(x), y)
        net.backward(loss.backward())
        opt.step()
    last = loss.forward(net.forward(x), y)
    assert last < 0.05 * first, (first, last)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: make_optimizer("rmsprop", p, 0.1), "optim: unknown value 'rmsprop'"),
        (lambda p: SGD(p, lr=0.0), "lr: must be a finite number > 0"),
        (lambda p: SGD(p, lr=0.1, momentum=1.0), "momentum: must be in [0, 1)"),
        (lambda p: Adam(p, lr=0.1, beta2=1.0), "beta2: must be in [0, 1)"),
        (lambda p: SGD(p, lr=0.1, clip_norm=-1.0), "clip_norm: must be null or a finite number"),
    ],
)
def test_bad_optimizer_settings(call, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)")):
        call(_params())


@pytest.mark.parametrize(
    ("name", "kwargs"), [("sgd", {}), ("momentum", {}), ("adam", {}), ("sgd", {"clip_norm": 0.1})]
)
def test_flat_buffer_path_equals_the_per_array_path(name, kwargs):
    """A Network keeps parameters and gradients in one buffer each; optimisers then update the whole
    buffer at once. The result must equal updating each array on its own."""
    net = build_network(
        NetworkSpec(input_dim=4, width=6, depth=3, output_dim=2, seed=3, activation="relu", init="he_normal")
    )
    assert all(p.base is net.flat_params for _, p, _ in net.parameters())
    rng = np.random.default_rng(0)
    net.flat_grads[:] = rng.standard_normal(net.flat_grads.size)
    copies = [(k, p.copy(), g.copy()) for k, p, g in net.parameters()]
    a, b = (
        make_optimizer(name, net.parameters(), 0.05, **kwargs),
        make_optimizer(name, copies, 0.05, **kwargs),
    )
    assert len(a.pairs) == 1 and len(b.pairs) == len(copies)
    for _ in range(3):
        na, nb = a.step(), b.step()
        assert (
            (na is None and nb is None) if "clip_norm" not in kwargs else na == pytest.approx(nb, rel=1e-12)
        )
    for (_, p, _), (_, q, _) in zip(net.parameters(), copies, strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_updates_in_blocks_are_the_whole_array_update(name, monkeypatch):
    """Optimisers update in blocks of ``BLOCK`` entries through a scratch of one block: a network of
    several blocks (BLOCK set to 7 entries) takes bit for bit the same steps as in one block."""
    from harness.nn import NetworkSpec, build_network, make_optimizer, optim

    spec = NetworkSpec(input_dim=4, width=5, depth=3, output_dim=2, activation="tanh", init="xavier_normal")
    nets = [build_network(spec) for _ in range(2)]
    x = np.random.default_rng(0).standard_normal((6, 4))
    for net, block in zip(nets, [optim.BLOCK, 7], strict=True):
        monkeypatch.setattr(optim, "BLOCK", block)
        opt = make_optimizer(name, net.parameters(), 0.1)
        assert opt.scratch.size == min(block, net.flat_params.size)
        for _ in range(3):
            net.backward(np.ones((6, 2)) * net.forward(x))
            opt.step()
    assert nets[0].flat_params.size > 7 and np.array_equal(nets[0].flat_params, nets[1].flat_params)
