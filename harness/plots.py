"""Figures from arrays: each function takes NumPy arrays and returns a matplotlib ``Figure``.

No pyplot state is used (figures are built with ``matplotlib.figure.Figure``), so nothing leaks
between runs and no display is needed.
"""

from __future__ import annotations

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

GRAD_LABELS = {"grad_W": "||dL/dW||", "grad_b": "||dL/db||", "grad_h": "||dL/dh||"}


def gradient_flow_figure(
    profile: dict[str, np.ndarray], spread: dict[str, np.ndarray] | None = None, title: str = ""
) -> Figure:
    """Per-layer gradient norms (log scale), with a band of +-1 std of log10 across draws."""
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for key, label in GRAD_LABELS.items():
        values = np.asarray(profile[key], dtype=float)
        layers = np.arange(1, values.size + 1)
        if not np.any(np.isfinite(values) & (values > 0)):
            continue
        (line,) = ax.plot(layers, values, marker="o", ms=3, label=label)
        if spread is not None and key in spread and np.any(spread[key] > 0):
            band = 10.0 ** np.asarray(spread[key], dtype=float)
            ax.fill_between(layers, values / band, values * band, color=line.get_color(), alpha=0.2)
    ax.set_yscale("log")
    ax.set_xlabel("layer l")
    ax.set_ylabel("gradient norm")
    ax.set_title(title or "gradient flow across layers")
    ax.legend()
    return fig


def heatmap_figure(
    steps: np.ndarray, values: np.ndarray, title: str = "", label: str = "||dL/dW||"
) -> Figure:
    """A layer x step heatmap of ``values`` (shape (steps, layers)) on a log colour scale."""
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    data = np.asarray(values, dtype=float).T
    positive = data[np.isfinite(data) & (data > 0)]
    norm = LogNorm(positive.min(), positive.max()) if positive.size else None
    masked = np.ma.masked_invalid(np.where(data > 0, data, np.nan))
    mesh = ax.pcolormesh(
        np.asarray(steps), np.arange(1, data.shape[0] + 1), masked, norm=norm, shading="nearest"
    )
    fig.colorbar(mesh, ax=ax, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("layer l")
    ax.set_title(title or f"{label} during training")
    return fig


def gradcheck_figure(
    layers: list[str],
    errors: np.ndarray,
    threshold: float,
    title: str = "",
    unresolved: np.ndarray | None = None,
) -> Figure:
    """Relative gradient-check error per layer (log scale) against the threshold: blue passed, red
    failed, grey ``unresolved`` (gradients below the differences' rounding floor)."""
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.add_subplot()
    errors = np.asarray(errors, dtype=float)
    shown = np.where(errors > 0, errors, np.nan)
    grey = np.zeros(len(layers), bool) if unresolved is None else np.asarray(unresolved, bool)
    colours = ["0.6" if g else "C3" if not e < threshold else "C0" for e, g in zip(errors, grey, strict=True)]
    ax.bar(np.arange(len(layers)), shown, color=colours)
    if grey.any():
        ax.bar([0], [np.nan], color="0.6", label="below rounding floor")
    ax.axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(layers)), layers, rotation=90, fontsize=7)
    ax.set_ylabel("relative error")
    ax.set_title(title or "gradient check per layer")
    ax.legend()
    return fig
