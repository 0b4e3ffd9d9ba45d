"""The one registry of what a run measures: per-layer statistics and summary metrics.

Each entry says what the study, the tracking, the per-run plots and the sweep figures need to know:
its label, whether it is a norm (positive and log-normal over draws: averaged in log space, drawn on a
log axis, logged with its log10), which mode records it, how a phase diagram colours it, and, for a
statistic, the summaries made from it. Adding a statistic or a summary is one entry here plus the
code that computes it (``harness.stats`` / ``harness.study``). Imports nothing of the harness.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Statistic:
    """A per-layer statistic (arrays of length depth, layer l = 1..depth)."""

    name: str
    label: str
    norm: bool = False
    summaries: tuple[str, ...] = ()  # the summary metrics computed from it


@dataclass(frozen=True)
class Summary:
    """A summary metric (logged at step 0)."""

    name: str
    label: str = ""
    mode: str | None = None  # "init" or "train": only runs of that mode record it
    scale: str = "sequential"  # phase diagrams: "diverging" (signed, 0 critical), "bounded" (0..1)
    phase_theory: bool = False  # the mean-field phase numbers: plain, un-normalised networks only


STATISTICS = {
    s.name: s
    for s in (
        Statistic("grad_W", "||dL/dW_l||", norm=True,
                  summaries=("grad_ratio_log10", "grad_norm_min", "grad_norm_max")),
        Statistic("grad_b", "||dL/db_l||", norm=True),
        Statistic("grad_h", "||dL/dh_l||", norm=True,
                  summaries=("grad_h_ratio_log10", "grad_h_slope", "grad_h_logvar")),
        Statistic("act_mean", "mean of phi(z_l)"),
        Statistic("act_std", "std of phi(z_l)"),
        Statistic("act_saturated", "saturated fraction"),
        Statistic("act_dead", "dead fraction"),
    )
}  # fmt: skip
STATS = tuple(STATISTICS)
NORM_STATS = tuple(k for k, s in STATISTICS.items() if s.norm)

_SUMMARIES = (
    Summary("grad_ratio_log10", "log10 ||dL/dW_1|| / ||dL/dW_D||", scale="diverging"),
    Summary("grad_h_ratio_log10", "log10 ||dL/dh_1|| / ||dL/dh_D||", scale="diverging"),
    Summary("grad_h_slope", "rate: slope of log ||dL/dh_l||^2 per layer", scale="diverging"),
    Summary("grad_norm_min"),
    Summary("grad_norm_max"),
    Summary("gradcheck_max_rel_error"),
    Summary("gradcheck_unresolved"),
    Summary("gradcheck_passed"),
    Summary("diverged", scale="bounded"),
    Summary("diverged_step"),
    Summary("diverged_layer"),
    Summary("final_loss", mode="train"),
    Summary("final_accuracy", mode="train", scale="bounded"),
    Summary("final_train_accuracy", mode="train", scale="bounded"),
    Summary("grad_h_logvar", mode="init"),
    Summary("jacobian_sv2_mean", mode="init"),
    Summary("jacobian_sv2_rel_var", mode="init"),
    Summary("jacobian_sv2_underflow", mode="init"),
    Summary("theory_rate", mode="init", scale="diverging"),
    Summary("theory_log_chi1", mode="init", scale="diverging"),
    Summary("rate_diff", mode="init", scale="diverging"),
    Summary("theory_jacobian_sv2_mean", mode="init"),
    Summary("theory_jacobian_sv2_rel_var", mode="init"),
    Summary("theory_grad_h_logvar", mode="init"),
    *(
        Summary(f"theory_{k}", phase_theory=True)
        for k in ("q_star", "chi1", "c_star", "chi_c", "xi_q", "xi_c", "c_power")
    ),
)
SUMMARIES = {s.name: s for s in _SUMMARIES}  # every summary a run logs: any can be a sweep figure's metric


def is_norm(name: str) -> bool:
    """A norm statistic (or the theory profile of one, ``theory_grad_h``)."""
    return name in NORM_STATS or (name.startswith("theory_") and name[7:] in NORM_STATS)


def label(name: str) -> str:
    """The axis label of a statistic or summary (its name when it has none)."""
    entry = STATISTICS.get(name) or SUMMARIES.get(name)
    return (entry.label if entry else "") or name


def only_in(mode: str) -> tuple[str, ...]:
    """The summaries that only runs of ``mode`` record."""
    return tuple(k for k, s in SUMMARIES.items() if s.mode == mode)


def phase_theory() -> tuple[str, ...]:
    return tuple(k for k, s in SUMMARIES.items() if s.phase_theory)
