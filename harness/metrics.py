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
        Statistic("preact_q", "q_l: mean squared pre-activation"),
        Statistic("preact_c", "c_l: correlation of two inputs' pre-activations"),
    )
}  # fmt: skip
STATS = tuple(STATISTICS)
NORM_STATS = tuple(k for k, s in STATISTICS.items() if s.norm)

_SUMMARIES = (
    Summary("grad_ratio_log10", "log10 ||dL/dW_1|| / ||dL/dW_D||", scale="diverging"),
    Summary("grad_h_ratio_log10", "log10 ||dL/dh_1|| / ||dL/dh_D||", scale="diverging"),
    Summary("grad_h_slope", "rate: slope of log ||dL/dh_l||^2 per layer", scale="diverging"),
    Summary("grad_norm_min", "smallest ||dL/dW_l||"),
    Summary("grad_norm_max", "largest ||dL/dW_l||"),
    Summary("gradcheck_max_rel_error", "gradient check: largest relative error"),
    Summary("gradcheck_unresolved", "gradient check: unresolved directions"),
    Summary("gradcheck_passed", "gradient check passed (1) or not (0)"),
    Summary("diverged", "diverged (1) or not (0)", scale="bounded"),
    Summary("diverged_step", "step of the first NaN/Inf"),
    Summary("diverged_layer", "layer of the first NaN/Inf"),
    Summary("final_loss", "test loss after training", mode="train"),
    Summary("final_accuracy", "test accuracy after training", mode="train", scale="bounded"),
    Summary("final_train_accuracy", "training accuracy after training", mode="train", scale="bounded"),
    Summary("grad_h_logvar", "Var log(||dL/dh_1||^2 / ||dL/dh_D||^2)", mode="init"),
    Summary("jacobian_sv2_mean", "mean squared singular value of dh_D/dx", mode="init"),
    Summary("jacobian_sv2_rel_var", "spread of dh_D/dx: Var / mean^2 of its sv^2", mode="init"),
    Summary("jacobian_sv2_underflow", "squared singular values below rounding", mode="init"),
    Summary("theory_rate", "theory: rate per layer", mode="init", scale="diverging"),
    Summary("theory_log_chi1", "theory: log chi_1", mode="init", scale="diverging"),
    Summary("rate_diff", "measured rate - theory rate", mode="init", scale="diverging"),
    Summary("theory_jacobian_sv2_mean", "theory: mean sv^2 of dh_D/dx", mode="init"),
    Summary("theory_jacobian_sv2_rel_var", "theory: spread of dh_D/dx", mode="init"),
    Summary("theory_grad_h_logvar", "theory: Var log gradient-norm ratio", mode="init"),
    *(
        Summary(f"theory_{k}", f"theory: {text}", phase_theory=True)
        for k, text in (
            ("q_star", "q*"),
            ("chi1", "chi_1"),
            ("c_star", "c*"),
            ("chi_c", "chi_c"),
            ("xi_q", "xi_q (layers)"),
            ("xi_c", "xi_c (layers)"),
            ("c_power", "power of 1 - c_l"),
        )
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
