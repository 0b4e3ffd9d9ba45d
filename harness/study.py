"""One study job, from a validated ``StudyConfig`` to numbers: no Hydra, no MLflow.

- ``init`` mode: ``init.repeats`` independent draws of (network seed, batch, probe direction); one
  forward and backward pass each, at initialisation. Norms are log-normal across draws, so per-layer
  norms are averaged in log space (geometric mean, spread = std of log10).
- ``train`` mode: ``train.steps`` optimiser steps on minibatches; statistics, loss and test accuracy
  every ``train.log_every`` steps and at the last step. NaN or Inf in the loss or any gradient stops
  training and is recorded (diverged, its step, the first layer affected): a result, not a crash.

Summary metrics (what makes runs comparable in the MLflow table):
``grad_ratio_log10`` log10(||dL/dW_1|| / ||dL/dW_D||) and ``grad_h_ratio_log10``
log10(||dL/dh_1|| / ||dL/dh_D||)
(< 0: vanishing towards the input, > 0: exploding; in init mode of the geometric means over draws,
i.e. the mean of the per-draw log ratios);
``grad_h_slope`` least-squares slope of log ||dL/dh_l||^2 against l (per layer; 0 is critical);
``grad_norm_min`` / ``grad_norm_max`` over layers of ||dL/dW_l||; ``gradcheck_max_rel_error`` (over
rows the differences resolve), ``gradcheck_unresolved`` (rows below the rounding floor), ``gradcheck_passed``;
``final_loss``, ``final_accuracy`` (test set), ``final_train_accuracy`` (the whole training set
after the last step) (train mode); ``grad_h_logvar``: the variance over draws and samples of
log(||dL/dh_1||^2 / ||dL/dh_D||^2), one sample's finite-width spread (init mode);
``jacobian_sv2_underflow``: singular values below n eps x the largest (rounding, not spectrum);
``theory_*``: the mean-field numbers beside them (``phase_theory`` in every mode, the rest in init
mode on Gaussian data); ``diverged`` (0/1), ``diverged_step``, ``diverged_layer``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from harness import correlation, theory
from harness.config import StudyConfig, first_layer_sw2, hidden_q_star
from harness.data import Dataset, load_data
from harness.gradcheck import GradcheckReport, check_network
from harness.metrics import NORM_STATS, STATS
from harness.nn import (
    LinearProbe,
    MSELoss,
    Network,
    SoftmaxCrossEntropy,
    build_network,
)
from harness.prediction import Prediction, predict
from harness.stats import (
    HIST_EDGES,
    first_nonfinite_layer,
    gradient_histograms,
    input_output_jacobian,
    layer_stats,
    log_slope,
)

Progress = Callable[[int, int], None]
Loss = LinearProbe | MSELoss | SoftmaxCrossEntropy
OnLog = Callable[[int, dict, float, float], None]  # (step, per-layer stats, loss, accuracy) as measured


@dataclass
class StudyResult:
    mode: str
    summary: dict[str, float]
    profile: dict[str, np.ndarray]  # per layer (depth,): geometric means for norms, means otherwise
    spread: dict[str, np.ndarray]  # per layer: std of log10 for norms, std otherwise (init mode)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # everything, for the .npz artifact
    gradcheck: GradcheckReport | None = None
    completed: str = ""  # set on a result kept from an interrupted study: how far it got


def make_loss(cfg: StudyConfig, batch: int, out_dim: int, rng: np.random.Generator, dtype: str) -> Loss:
    if cfg.loss.name == "probe":
        return LinearProbe.random((batch, out_dim), rng, dtype)
    return MSELoss() if cfg.loss.name == "mse" else SoftmaxCrossEntropy()


def scale_inputs(cfg: StudyConfig, data: Dataset) -> Dataset:
    """The dataset with every input multiplied by ``data.input_scale``; "q_star" scales the training
    inputs' second moment to p_0 = (q* - sigma_b^2) / sigma_1^2, so that the first layer's
    pre-activations have variance q*, the hidden layers' fixed point (Pennington et al. 2017's regime)."""
    scale = cfg.data.input_scale
    if scale == "q_star":
        target = (hidden_q_star(cfg) - cfg.model.bias_std**2) / first_layer_sw2(cfg, data.input_dim)
        scale = math.sqrt(target / float(np.mean(data.x_train**2)))
    if scale == 1.0:
        return data
    return dataclasses.replace(data, x_train=data.x_train * scale, x_test=data.x_test * scale)


def sample_batch(data: Dataset, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    idx = rng.choice(len(data.x_train), size=size, replace=len(data.x_train) < size)
    return data.x_train[idx], None if data.y_train is None else data.y_train[idx]


def gradcheck_at_init(
    cfg: StudyConfig, net: Network, data: Dataset, rng: np.random.Generator
) -> GradcheckReport | None:
    """The configured check, in float64 on a copy of ``net``."""
    g = cfg.gradcheck
    if g.mode == "off":
        return None
    twin = net.astype("float64")
    x, target = sample_batch(data, g.batch_size, rng)
    loss = make_loss(cfg, g.batch_size, net.spec.output_dim, rng, "float64")
    with np.errstate(all="ignore"):
        return check_network(
            twin, x, loss, target, mode=g.mode, threshold=g.threshold,
            entries=g.entries, directions=g.directions, seed=int(rng.integers(2**31)),
        )  # fmt: skip


def gradcheck_summary(report: GradcheckReport | None) -> dict[str, float]:
    if report is None:
        return {}
    resolved = [r.rel_error for r in report.rows if not r.noise]
    return {
        "gradcheck_max_rel_error": max(resolved, default=float("nan")),
        "gradcheck_unresolved": float(sum(r.noise for r in report.rows)),
        "gradcheck_passed": float(report.passed),
    }


def norm_summary(grad_w: np.ndarray, grad_h: np.ndarray) -> dict[str, float]:
    with np.errstate(all="ignore"):
        return {
            "grad_ratio_log10": float(np.log10(grad_w[0] / grad_w[-1])),
            "grad_h_ratio_log10": float(np.log10(grad_h[0] / grad_h[-1])),
            "grad_h_slope": log_slope(grad_h**2),
            "grad_norm_min": float(np.min(grad_w)),
            "grad_norm_max": float(np.max(grad_w)),
        }


def predict_for(
    cfg: StudyConfig, input_dim: int, output_dim: int, batch: int, input_moment: float = 1.0
) -> Prediction | None:
    """The theory for the study's network (``harness.prediction``; None where nothing is modelled)."""
    m = cfg.model
    spec = cfg.network_spec(input_dim, output_dim, cfg.seed)
    return predict(
        m.activation, spec.widths, input_dim, m.init, m.init_scale, m.bias_std, skip=m.skip,
        alpha=spec.alpha, block_layers=m.block_layers, norm=m.norm, output_dim=output_dim, batch=batch,
        input_moment=input_moment,
    )  # fmt: skip


def phase_theory(cfg: StudyConfig) -> dict[str, float]:
    """The mean-field phase of the hidden layers (``correlation.phase_summary``: q*, chi_1, c*, chi_c,
    xi_q, xi_c), for plain networks without normalisation in any mode; {} where it does not apply."""
    m = cfg.model
    if m.norm != "none" or m.skip:
        return {}
    sw2 = theory.sigma_w2(m.init, m.width, m.width, m.init_scale)
    return correlation.phase_summary(m.activation, sw2, m.bias_std**2)


def prediction_metrics(pred: Prediction) -> dict[str, float]:
    """The summary metrics a prediction gives (``theory_*``), as runs log them and figures draw them."""
    return {
        "theory_log_chi1": pred.log_chi1,
        "theory_rate": pred.rate,
        "theory_jacobian_sv2_mean": pred.jacobian_mean,
        "theory_jacobian_sv2_rel_var": pred.jacobian_rel_var,
        "theory_grad_h_logvar": float(pred.grad_h_logvar[0]),
    }


def _theory_summary(
    cfg: StudyConfig, data: Dataset, out_dim: int, measured_rate: float, result: dict
) -> None:
    """Predicted rate, log chi_1, the Jacobian's predicted moments and the finite-width spread beside
    the measured ones."""
    pred = predict_for(cfg, data.input_dim, out_dim, cfg.init.batch_size, float(np.mean(data.x_train**2)))
    if pred is None:
        return
    result["summary"] |= prediction_metrics(pred) | {"rate_diff": measured_rate - pred.rate}
    result["profile"]["theory_grad_h"] = np.sqrt(pred.grad_h2)
    result["profile"]["theory_grad_h_logvar"] = pred.grad_h_logvar


def _jacobian(cfg: StudyConfig, net: Network, data: Dataset) -> tuple[dict, dict]:
    """Singular values of dh_D/dx at the first training input, where the width allows."""
    if max(net.spec.widths) > cfg.init.jacobian_max_width or net.spec.input_dim > cfg.init.jacobian_max_width:
        return {}, {}
    with np.errstate(all="ignore"):
        jac = input_output_jacobian(net, data.x_train[0])
    if jac is None or not np.all(np.isfinite(jac)):
        return {}, {}
    sv = np.linalg.svd(jac, compute_uv=False)
    eig = np.zeros(jac.shape[0])
    with np.errstate(all="ignore"):  # squares that overflow are a result (inf, NaN spread)
        eig[: sv.size] = sv**2  # the eigenvalues of J J^T (zeros where input_dim < width)
        # an SVD resolves singular values to ~n eps sigma_max (LAPACK's bound): below that, rounding
        tiny = (max(jac.shape) * np.finfo(jac.dtype).eps * float(sv.max())) ** 2 if sv.size else 0.0
        summary = {
            "jacobian_sv2_mean": float(eig.mean()),
            "jacobian_sv2_rel_var": float(eig.var() / eig.mean() ** 2),
            # squared singular values below that are rounding, not spectrum: the small end is not measured
            "jacobian_sv2_underflow": float(np.count_nonzero(eig[: sv.size] < tiny)),
        }
    return summary, {"jacobian_sv": sv, "jacobian_width": np.array(jac.shape[0])}


def draws_per_pass(cfg: StudyConfig, input_dim: int, output_dim: int) -> int:
    """How many draws run stacked in one pass: all of them, or as many as ``init.stack_mb`` holds.

    A draw's memory, estimated from above: its parameters and their gradients, and per hidden layer
    eight (batch, width) arrays (the pass's outputs, gradients and temporaries), three more with a norm
    layer and with a skip, for each layer of a block."""
    m, itemsize = cfg.model, np.dtype(cfg.model.dtype).itemsize
    dims, widest = [input_dim, *cfg.hidden_widths], max(cfg.hidden_widths)
    params = sum((a + 1) * b for a, b in zip(dims, dims[1:] + [output_dim], strict=True))
    params += (m.block_layers - 1) * m.depth * (widest + 1) * widest
    arrays = (8 + 3 * (m.norm != "none") + 3 * m.skip) * m.block_layers * m.depth
    per_draw = itemsize * (2 * params + arrays * cfg.init.batch_size * widest)
    return int(max(1, min(cfg.init.repeats, cfg.init.stack_mb * 2**20 // per_draw)))


def _stacked_draws(
    cfg: StudyConfig, data: Dataset, out_dim: int, seeds: list[np.random.SeedSequence]
) -> tuple[Network, np.ndarray, np.ndarray | None, Loss]:
    """A stack of the draws ``seeds``: each draw's Generator gives, in this order, its network's seed,
    its batch and its probe, exactly as a draw run alone takes them."""
    net_seeds, xs, targets, probes = [], [], [], []
    batch, dtype = cfg.init.batch_size, cfg.model.dtype
    for seed in seeds:
        rng = np.random.default_rng(seed)
        net_seeds.append(int(rng.integers(2**31)))
        x, target = sample_batch(data, batch, rng)
        xs.append(x)
        targets.append(target)
        probes.append(make_loss(cfg, batch, out_dim, rng, dtype))
    net = build_network(cfg.network_spec(data.input_dim, out_dim, net_seeds[0]), seeds=net_seeds)
    loss = LinearProbe(np.stack([p.v for p in probes])) if cfg.loss.name == "probe" else probes[0]
    return net, np.stack(xs), None if targets[0] is None else np.stack(targets), loss


def run_init(cfg: StudyConfig, progress: Progress | None = None) -> StudyResult:
    """Gradient flow at initialisation over ``cfg.init.repeats`` draws, run stacked (``draws_per_pass``
    at a time): every draw's numbers are bit for bit those of the same draw run alone."""
    repeats, depth = cfg.init.repeats, cfg.model.depth
    data_seed, check_seed, *draw_seeds = np.random.SeedSequence(cfg.seed).spawn(2 + repeats)
    data = scale_inputs(cfg, load_data(cfg.data, np.random.default_rng(data_seed)))
    out_dim = data.output_dim(cfg.data.output_dim)
    per = {k: np.full((repeats, depth), np.nan) for k in STATS}
    losses = np.full(repeats, np.nan)
    diverged_layer, first_net, hists = 0, None, {}
    ratios = []  # per pass (draws * batch, depth): log(||dL/dh_l||^2 / ||dL/dh_D||^2) of each sample
    done, chunk = 0, draws_per_pass(cfg, data.input_dim, out_dim)
    try:
        for start in range(0, repeats, chunk):
            net, x, target, loss = _stacked_draws(cfg, data, out_dim, draw_seeds[start : start + chunk])
            with np.errstate(all="ignore"):
                pass_losses = loss.forward(net.forward(x), target)
                net.backward(loss.backward())
                stats = layer_stats(net)
                hist = gradient_histograms(net)
                ratio = sample_log_ratios(net).reshape(-1, depth)
            rows = slice(start, start + net.stack)
            losses[rows] = pass_losses
            for k in STATS:
                per[k][rows] = stats[k]
            for k, v in hist.items():
                hists[k] = hists.get(k, 0) + v
            bad = ~(np.isfinite(pass_losses) & np.all(np.isfinite(stats["grad_W"]), axis=1))
            if not diverged_layer and bad.any():
                diverged_layer = first_nonfinite_layer(net, int(np.argmax(bad))) or depth + 1
            if first_net is None:
                first_net = net.draw(0)
            ratios.append(ratio)
            done = rows.stop
            if progress:
                progress(done, repeats)
        report = gradcheck_at_init(cfg, first_net, data, np.random.default_rng(check_seed))
    except KeyboardInterrupt as stop:  # keep what the finished draws measured
        if done:
            part = {k: v[:done] for k, v in per.items()}
            kept = [np.concatenate(ratios)[: done * cfg.init.batch_size]]
            stop.partial = _init_result(
                cfg, data, out_dim, part, losses[:done], hists, diverged_layer, None, None, kept
            )
            stop.partial.completed = f"{done} of {repeats} draws"
        raise
    return _init_result(cfg, data, out_dim, per, losses, hists, diverged_layer, report, first_net, ratios)


def sample_log_ratios(net: Network) -> np.ndarray:
    """(batch, depth): log(||dL/dh_l||^2 / ||dL/dh_D||^2) of each sample, after a backward pass (a
    stack: (R, batch, depth))."""
    outs = [layer.grad_out for layer in net.hidden]
    squares = np.stack([np.einsum("...ij,...ij->...i", g, g) for g in outs], -1)
    with np.errstate(all="ignore"):
        return np.log(squares / squares[..., -1:])


def log_ratio_variance(ratios: list[np.ndarray]) -> np.ndarray:
    """Per layer, the variance over draws and samples of the per-sample log ratios (finite ones only):
    every (draw, sample) pair has the same distribution, so this estimates one sample's variance."""
    if not ratios:
        return np.array([])
    stack = np.concatenate(ratios).astype(np.float64)
    stack[~np.isfinite(stack)] = np.nan
    with _quiet():
        return np.nanvar(stack, axis=0, ddof=1)


def _init_result(
    cfg: StudyConfig, data: Dataset, out_dim: int, per: dict, losses: np.ndarray, hists: dict,
    diverged_layer: int, report: GradcheckReport | None, first_net: Network | None, ratios: list,
) -> StudyResult:  # fmt: skip
    """Profiles (geometric means over draws), summaries, theory and the Jacobian (``first_net``)."""
    profile, spread = {}, {}
    with np.errstate(all="ignore"), _quiet():
        for k in STATS:
            if k in NORM_STATS:
                logs = np.log10(np.where(np.isfinite(per[k]), per[k], np.nan))
                profile[k], spread[k] = 10 ** np.nanmean(logs, axis=0), np.nanstd(logs, axis=0)
            else:
                profile[k], spread[k] = np.nanmean(per[k], axis=0), np.nanstd(per[k], axis=0)
    summary = norm_summary(profile["grad_W"], profile["grad_h"]) | {
        "diverged": float(diverged_layer > 0),
        "diverged_step": 0.0 if diverged_layer else float("nan"),
        "diverged_layer": float(diverged_layer) if diverged_layer else float("nan"),
    }
    summary |= gradcheck_summary(report)
    profile["grad_h_logvar"] = log_ratio_variance(ratios)
    summary["grad_h_logvar"] = float(profile["grad_h_logvar"][0]) if len(ratios) else float("nan")
    summary |= phase_theory(cfg)
    arrays = per | {"loss": losses, "hist_edges": HIST_EDGES} | {f"hist_{k}": v for k, v in hists.items()}
    _theory_summary(cfg, data, out_dim, summary["grad_h_slope"], {"summary": summary, "profile": profile})
    if first_net is not None:
        jac_summary, jac_arrays = _jacobian(cfg, first_net, data)
        summary |= jac_summary
        arrays |= jac_arrays
    return StudyResult("init", summary, profile, spread, arrays, report)


class _quiet:
    """Silence numpy's "mean of empty slice" warnings for all-NaN layers (diverged draws)."""

    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)


def run_study(cfg: StudyConfig, progress: Progress | None = None, on_log: OnLog | None = None) -> StudyResult:
    """One job's numbers; ``on_log`` sees each training step's statistics as they are measured."""
    if cfg.mode == "init":
        return run_init(cfg, progress)
    from harness.training import run_train

    return run_train(cfg, progress, on_log)
