"""Train mode of a study: optimiser steps on minibatches, statistics every ``train.log_every`` steps.

NaN or Inf in the loss or any gradient stops training and is recorded (diverged, its step, the first
layer affected): a result, not a crash. A signal keeps the steps measured so far (``partial``).
"""

from __future__ import annotations

import math

import numpy as np

from harness.config import StudyConfig
from harness.data import Dataset, load_data
from harness.gradcheck import GradcheckReport
from harness.metrics import STATS
from harness.nn import Network, build_network, make_optimizer
from harness.stats import HIST_EDGES, first_nonfinite_layer, gradient_histograms, layer_stats
from harness.study import (
    OnLog,
    Progress,
    StudyResult,
    gradcheck_at_init,
    gradcheck_summary,
    make_loss,
    norm_summary,
    phase_theory,
    sample_batch,
    scale_inputs,
)


def _accuracy(net: Network, data: Dataset, split: str = "test") -> float:
    """Fraction of the split's samples classified right (NaN for regression data)."""
    if not data.classes:
        return float("nan")
    x, y = (data.x_test, data.y_test) if split == "test" else (data.x_train, data.y_train)
    with np.errstate(all="ignore"):
        return float(np.mean(np.argmax(net.forward(x), axis=1) == y))


def _setup(cfg: StudyConfig) -> tuple:
    """Data, network, its gradient check, the minibatch generator, loss and optimiser (seeded)."""
    data_seed, net_seed, batch_seed, check_seed = np.random.SeedSequence(cfg.seed).spawn(4)
    data = scale_inputs(cfg, load_data(cfg.data, np.random.default_rng(data_seed)))
    out_dim = data.output_dim(cfg.data.output_dim)
    net_seed = int(np.random.default_rng(net_seed).integers(2**31))
    net = build_network(cfg.network_spec(data.input_dim, out_dim, net_seed))
    report = gradcheck_at_init(cfg, net, data, np.random.default_rng(check_seed))
    rng = np.random.default_rng(batch_seed)
    loss = make_loss(cfg, cfg.train.batch_size, out_dim, rng, cfg.model.dtype)
    o = cfg.optim
    kwargs = {"adam": {"beta1": o.beta1, "beta2": o.beta2}, "momentum": {"momentum": o.momentum}}
    opt = make_optimizer(o.name, net.parameters(), o.lr, clip_norm=o.clip_norm, **kwargs.get(o.name, {}))
    return data, net, report, rng, loss, opt


def run_train(cfg: StudyConfig, progress: Progress | None = None, on_log: OnLog | None = None) -> StudyResult:
    """``cfg.train.steps`` optimiser steps, statistics every ``log_every`` steps, each logged step passed
    to ``on_log`` as it is measured. Interrupted, it attaches the steps measured so far to the exception
    (``partial``)."""
    data, net, report, rng, loss, opt = _setup(cfg)
    log = _TrainLog()
    total = cfg.train.steps
    try:
        for step in range(total + 1):  # step `total` only measures: the state after the last update
            x, target = sample_batch(data, cfg.train.batch_size, rng)
            with np.errstate(all="ignore"):
                value = loss.forward(net.forward(x), target)
                net.backward(loss.backward())
                finite = math.isfinite(value) and math.isfinite(
                    float(np.vdot(net.flat_grads, net.flat_grads))
                )
            if step % cfg.train.log_every == 0 or step == total or not finite:
                with np.errstate(all="ignore"):
                    stats = layer_stats(net)
                    hists = gradient_histograms(net)  # the last logged step's are kept
                accuracy = _accuracy(net, data)
                log.add(step, stats, value, accuracy, hists)
                if on_log:
                    on_log(step, stats, value, accuracy)
            if not finite:
                log.diverged = step, first_nonfinite_layer(net) or cfg.model.depth + 1
                break
            if step < total:
                opt.step()
            if progress and step % max(1, total // 100) == 0:
                progress(step, total)
    except KeyboardInterrupt as stop:  # keep the steps measured so far
        if log.steps:
            stop.partial = log.result(report)
            stop.partial.completed = f"step {log.steps[-1]} of {total}"
        raise
    if progress:
        progress(total, total)
    result = log.result(report)
    result.summary["final_train_accuracy"] = _accuracy(net, data, "train")  # the trained (or stopped) net
    result.summary |= phase_theory(cfg)
    return result


class _TrainLog:
    """What training measured, step by step; ``result`` turns it into a ``StudyResult``."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.accs: list[float] = []
        self.rows: dict[str, list] = {k: [] for k in STATS}
        self.hists: dict = {}
        self.diverged: tuple[int, int] | None = None  # (step, layer)

    def add(self, step: int, stats: dict, loss: float, accuracy: float, hists: dict) -> None:
        for k in STATS:
            self.rows[k].append(stats[k])
        self.hists = hists
        self.losses.append(loss)
        self.accs.append(accuracy)
        self.steps.append(step)  # last: a row counts once its step is recorded

    def result(self, report: GradcheckReport | None) -> StudyResult:
        n = len(self.steps)
        arrays = {k: np.array(v[:n]) for k, v in self.rows.items()}
        arrays |= {"steps": np.array(self.steps), "loss": np.array(self.losses[:n]),
                   "accuracy": np.array(self.accs[:n])}  # fmt: skip
        arrays |= {"hist_edges": HIST_EDGES} | {f"hist_{k}": v for k, v in self.hists.items()}
        profile = {k: arrays[k][-1] for k in STATS}
        spread = {k: np.zeros_like(v) for k, v in profile.items()}
        step, layer = self.diverged or (None, None)
        summary = norm_summary(arrays["grad_W"][0], arrays["grad_h"][0]) | {
            "final_loss": float(arrays["loss"][-1]),
            "final_accuracy": float(arrays["accuracy"][-1]),
            "diverged": float(step is not None),
            "diverged_step": float("nan") if step is None else float(step),
            "diverged_layer": float("nan") if layer is None else float(layer),
        }
        summary |= gradcheck_summary(report)
        return StudyResult("train", summary, profile, spread, arrays, report)
