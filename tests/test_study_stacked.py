"""Init mode runs its draws stacked: every per-draw number is bit for bit that of the draw run alone.

The reference below is the one-at-a-time path (what ``run_init`` did before stacking): one lone network
per draw, built from the draw's own Generator, its batch and its probe drawn from the same Generator in
the same order, one forward and backward pass each, the statistics read from the lone network.
"""

import math

import numpy as np
import pytest

from harness.config import parse_config
from harness.data import load_data
from harness.metrics import STATS
from harness.nn import build_network
from harness.stats import first_nonfinite_layer, gradient_histograms, layer_stats
from harness.study import draws_per_pass, make_loss, run_study, sample_batch, sample_log_ratios


def one_at_a_time(cfg):
    """Per-draw statistics, losses, summed histograms and sample log ratios, one lone draw at a time."""
    data_seed, _, *draw_seeds = np.random.SeedSequence(cfg.seed).spawn(2 + cfg.init.repeats)
    data = load_data(cfg.data, np.random.default_rng(data_seed))
    out_dim = data.output_dim(cfg.data.output_dim)
    per = {k: np.full((cfg.init.repeats, cfg.model.depth), np.nan) for k in STATS}
    losses, hists, ratios, diverged = np.full(cfg.init.repeats, np.nan), {}, [], 0
    for r, seed in enumerate(draw_seeds):
        rng = np.random.default_rng(seed)
        net = build_network(cfg.network_spec(data.input_dim, out_dim, int(rng.integers(2**31))))
        x, target = sample_batch(data, cfg.init.batch_size, rng)
        loss = make_loss(cfg, cfg.init.batch_size, out_dim, rng, cfg.model.dtype)
        with np.errstate(all="ignore"):
            losses[r] = loss.forward(net.forward(x), target)
            net.backward(loss.backward())
            stats = layer_stats(net)
            for k, v in gradient_histograms(net).items():
                hists[k] = hists.get(k, 0) + v
            ratios.append(sample_log_ratios(net))
        for k in STATS:
            per[k][r] = stats[k]
        if not diverged and not (math.isfinite(losses[r]) and np.all(np.isfinite(stats["grad_W"]))):
            diverged = first_nonfinite_layer(net) or cfg.model.depth + 1
    return per, losses, hists, np.concatenate(ratios), diverged


def _cfg(**groups):
    base = {"init": {"repeats": 5, "batch_size": 8}, "gradcheck": {"mode": "off"}, "seed": 3}
    for key, value in groups.items():
        base[key] = base.get(key, {}) | value
    return parse_config(base)


CASES = {
    "tanh": {"model": {"depth": 6, "width": 16}},
    "relu float32": {"model": {"depth": 5, "width": 12, "activation": "relu", "init": "he_normal",
                               "dtype": "float32", "bias_std": 0.2}},
    "sigmoid skip 2 layers": {"model": {"depth": 4, "width": 10, "activation": "sigmoid", "skip": True,
                                        "block_layers": 2, "skip_scale": "1/sqrt(depth)"}},
    "layernorm": {"model": {"depth": 4, "width": 8, "norm": "layer", "activation": "gelu"}},
    "batchnorm skip": {"model": {"depth": 3, "width": 8, "norm": "batch", "skip": True, "activation": "elu"}},
    "projection": {"model": {"depth": 3, "width": 20, "skip": True}, "data": {"input_dim": 7}},
    "mse teacher": {"model": {"depth": 4, "width": 16}, "loss": {"name": "mse"},
                    "data": {"name": "teacher_student", "input_dim": 6}},
    "cross entropy": {"model": {"depth": 4, "width": 16, "activation": "relu"},
                      "loss": {"name": "cross_entropy"}, "data": {"name": "spirals"}},
    "diverging": {"model": {"depth": 8, "width": 16, "activation": "relu", "init": "he_normal",
                            "init_scale": 1e38, "dtype": "float32"}},
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_stacked_draws_are_bit_for_bit_the_lone_draws(name):
    cfg = _cfg(**CASES[name])
    per, losses, hists, ratios, diverged = one_at_a_time(cfg)
    result = run_study(cfg)
    assert draws_per_pass(cfg, 1, 1) == cfg.init.repeats  # one stacked pass at this size
    for k in STATS:
        assert np.array_equal(result.arrays[k], per[k], equal_nan=True), k
    assert np.array_equal(result.arrays["loss"], losses, equal_nan=True)
    for k, v in hists.items():
        assert np.array_equal(result.arrays[f"hist_{k}"], v), k
    from harness.study import log_ratio_variance

    assert np.array_equal(result.profile["grad_h_logvar"], log_ratio_variance([ratios]), equal_nan=True)
    assert result.summary["diverged"] == float(diverged > 0)
    if name == "diverging":
        assert diverged and result.summary["diverged_layer"] == diverged


def test_chunks_give_the_same_numbers_as_one_pass():
    """A memory cap below one pass cuts the draws into chunks: the same numbers, every one of them."""
    cfg = _cfg(model={"depth": 5, "width": 16}, init={"repeats": 7, "batch_size": 8})
    whole = run_study(cfg)
    for cap in (0.05, 0.2):  # MB: 1 draw and a few draws per pass
        small = _cfg(model={"depth": 5, "width": 16}, init={"repeats": 7, "batch_size": 8, "stack_mb": cap})
        assert draws_per_pass(small, 64, 10) < 7
        part = run_study(small)
        for k, v in whole.arrays.items():
            assert np.array_equal(part.arrays[k], v, equal_nan=True), (cap, k)
        for k, v in whole.summary.items():
            assert part.summary[k] == v or (np.isnan(v) and np.isnan(part.summary[k])), (cap, k)


def test_draws_per_pass_holds_the_cap():
    """The estimate of a draw's memory bounds what one pass of the default study really allocates."""
    cfg = _cfg(model={"depth": 20, "width": 128}, init={"repeats": 16, "batch_size": 64, "stack_mb": 64.0})
    chunk = draws_per_pass(cfg, 128, 10)
    assert 1 <= chunk < 16
    # parameters and gradients alone: 2 x 8 bytes x (20 x 128 x 129 + 129 x 10) per draw
    floor = 2 * 8 * (20 * 128 * 129 + 129 * 10)
    assert chunk * floor <= 64 * 2**20
    assert draws_per_pass(_cfg(init={"stack_mb": 1e-6}), 128, 10) == 1  # never zero


def test_progress_reports_each_pass():
    seen = []
    cfg = _cfg(model={"depth": 3, "width": 8}, init={"repeats": 6, "batch_size": 4, "stack_mb": 0.01})
    run_study(cfg, progress=lambda done, total: seen.append((done, total)))
    chunk = draws_per_pass(cfg, 64, 10)
    assert seen == [(min(n + chunk, 6), 6) for n in range(0, 6, chunk)]
