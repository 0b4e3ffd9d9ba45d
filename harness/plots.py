"""Figures from arrays: each function takes NumPy arrays and returns a matplotlib ``Figure``.

No pyplot state is used (figures are built with ``matplotlib.figure.Figure``), so nothing leaks
between runs and no display is needed.
"""

from __future__ import annotations

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from harness import metrics


def _share_mathtext_layouts() -> None:
    """Make every Agg renderer of this process share one mathtext parser.

    Log axes label their ticks in mathtext ("10^-3"), and matplotlib caches a parsed label in the
    renderer's own parser (``functools.lru_cache`` on a method keys on the instance). Every figure
    gets a new renderer, so each run's figures parsed the same labels again: about a quarter of their
    drawing. The parse depends only on the text, dpi, font and hinting (the cache's key), so sharing
    the parser leaves every pixel as it was (tests/test_plots.py compares the PNG bytes). Skipped, as
    a speed-up only, if matplotlib's renderer has no such attribute."""
    from matplotlib.backends import backend_agg

    init = backend_agg.RendererAgg.__init__
    if getattr(init, "shares_mathtext", False):
        return
    shared: dict[str, object] = {}

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN001, N807
        init(self, *args, **kwargs)
        parser = getattr(self, "mathtext_parser", None)
        if parser is not None:
            self.mathtext_parser = shared.setdefault(getattr(parser, "_output_type", ""), parser)

    __init__.shares_mathtext = True
    __init__.original = init
    backend_agg.RendererAgg.__init__ = __init__


_share_mathtext_layouts()


def _figure(width: float, height: float, left=0.9, bottom=0.55, right=0.15, top=0.4, wspace=0.3) -> Figure:
    """A figure with fixed margins in inches. Per-run figures are drawn for every run of a sweep;
    a layout engine measures every label first and costs about a quarter of the drawing."""
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, bottom=bottom / height, right=1 - right / width,
                        top=1 - top / height, wspace=wspace)  # fmt: skip
    return fig


def _thin(n: int, most: int = 24) -> np.ndarray:
    """At most ``most`` evenly spread tick positions out of 0..n-1, always the first and the last
    (a label per layer is unreadable at depth 50 and costs more to lay out than the plot)."""
    if n <= most:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, most)).astype(int))


def gradient_flow_figure(
    profile: dict[str, np.ndarray],
    spread: dict[str, np.ndarray] | None = None,
    title: str = "",
    theory: np.ndarray | None = None,
) -> Figure:
    """Per-layer gradient norms (log scale), with a band of +-1 std of log10 across draws, and the
    mean-field prediction sqrt(E||dL/dh_l||^2) dashed where given."""
    fig = _figure(6.4, 4.0)
    ax = fig.add_subplot()
    for key in metrics.NORM_STATS:
        values = np.asarray(profile[key], dtype=float)
        layers = np.arange(1, values.size + 1)
        if not np.any(np.isfinite(values) & (values > 0)):
            continue
        (line,) = ax.plot(layers, values, marker="o", ms=3, label=metrics.label(key))
        if spread is not None and key in spread and np.any(spread[key] > 0):
            band = 10.0 ** np.asarray(spread[key], dtype=float)
            ax.fill_between(layers, values / band, values * band, color=line.get_color(), alpha=0.2)
    if theory is not None and np.any(np.isfinite(theory) & (np.asarray(theory) > 0)):
        layers = np.arange(1, len(theory) + 1)
        ax.plot(layers, theory, ls="--", color="k", lw=1.2, label="||dL/dh|| mean-field theory")
    ax.set_yscale("log")
    ax.set_xlabel("layer l")
    ax.set_ylabel("gradient norm")
    ax.set_title(title or "gradient flow across layers")
    ax.legend()
    return fig


def heatmap_figure(steps: np.ndarray, values: np.ndarray, title: str = "", stat: str = "grad_W") -> Figure:
    """A layer x step heatmap of ``values`` (shape (steps, layers)) on a log colour scale."""
    fig = _figure(6.4, 4.0, right=0.75)
    ax = fig.add_subplot()
    data = np.asarray(values, dtype=float).T
    positive = data[np.isfinite(data) & (data > 0)]
    norm = LogNorm(positive.min(), positive.max()) if positive.size else None
    masked = np.ma.masked_invalid(np.where(data > 0, data, np.nan))
    mesh = ax.pcolormesh(
        np.asarray(steps), np.arange(1, data.shape[0] + 1), masked, norm=norm, shading="nearest"
    )
    fig.colorbar(mesh, ax=ax, label=metrics.label(stat))
    ax.set_xlabel("step")
    ax.set_ylabel("layer l")
    ax.set_title(title or f"{metrics.label(stat)} during training")
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
    fig = _figure(6.4, 3.6, bottom=0.6)
    ax = fig.add_subplot()
    errors = np.asarray(errors, dtype=float)
    grey = np.zeros(len(layers), bool) if unresolved is None else np.asarray(unresolved, bool)
    # unresolved with nothing to show (no difference could be taken): a grey bar up to the threshold
    shown = np.where(errors > 0, errors, np.where(grey, threshold, np.nan))
    colours = ["0.6" if g else "C3" if not e < threshold else "C0" for e, g in zip(errors, grey, strict=True)]
    ax.bar(np.arange(len(layers)), shown, color=colours)
    if grey.any():
        ax.bar([0], [np.nan], color="0.6", label="unresolved (rounding floor)")
    ax.axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set_yscale("log")
    ticks = _thin(len(layers))
    ax.set_xticks(ticks, [layers[i] for i in ticks], rotation=90, fontsize=7)
    ax.set_ylabel("relative error")
    ax.set_title(title or "gradient check per layer")
    ax.legend()
    return fig


def gradient_histogram_figure(
    edges: np.ndarray,
    hist: np.ndarray,
    zero: np.ndarray,
    nan: np.ndarray,
    inf: np.ndarray,
    title: str = "",
) -> Figure:
    """Per-layer histograms of log10 |dL/dh_l| as a layer x bin map (log colour), with the entries
    that have no logarithm counted beside each layer: zeros, NaN and Inf are shown, never dropped."""
    fig = _figure(7.2, 4.2, right=0.75, wspace=0.08)
    ax, side = fig.subplots(1, 2, gridspec_kw={"width_ratios": [5, 1.4]}, sharey=True)
    counts = np.asarray(hist, dtype=float)
    layers = np.arange(1, counts.shape[0] + 1)
    shown = np.ma.masked_equal(counts, 0)
    norm = LogNorm(1, max(2.0, counts.max())) if counts.max() > 0 else None
    mesh = ax.pcolormesh(edges, np.append(layers, layers[-1] + 1) - 0.5, shown, norm=norm)
    fig.colorbar(mesh, ax=side, label="entries")
    ax.set_xlabel("log10 |dL/dh|  (end bins hold everything beyond)")
    ax.set_ylabel("layer l")
    ax.set_title(title or "backpropagated gradient per layer")
    for name, values, colour in (("zero", zero, "0.5"), ("NaN", nan, "C3"), ("Inf", inf, "C1")):
        # one line collection per kind (bars would draw one patch per layer)
        side.hlines(layers, 0, values, color=colour, lw=3, alpha=0.7, label=f"{name}: {int(np.sum(values))}")
    side.set_xlabel("no log10")
    side.legend(fontsize=7, loc="upper right")
    return fig


def activation_figure(
    profile: dict[str, np.ndarray], spread: dict[str, np.ndarray], title: str = ""
) -> Figure:
    """Activation mean (with +-1 std across draws), standard deviation, and the saturated (sigmoid,
    tanh) or dead (relu) fraction, per layer."""
    fig = _figure(9.6, 3.4, left=0.7, top=0.65, wspace=0.35)
    axes = fig.subplots(1, 3)
    layers = np.arange(1, len(profile["act_mean"]) + 1)
    for ax, key, label in zip(
        axes[:2], ("act_mean", "act_std"), ("mean of phi(z)", "std of phi(z)"), strict=True
    ):
        values = np.asarray(profile[key], float)
        ax.plot(layers, values, marker="o", ms=3)
        band = np.asarray(spread.get(key, np.zeros_like(values)), float)
        ax.fill_between(layers, values - band, values + band, alpha=0.2, lw=0)
        if np.nanmax(np.abs(values[np.isfinite(values)]), initial=0.0) > 1e3:
            ax.set_yscale("symlog")  # exploding activations: keep every layer visible
        ax.set_title(label)
        ax.set_xlabel("layer l")
    frac = [(k, profile[k]) for k in ("act_saturated", "act_dead") if np.any(np.isfinite(profile[k]))]
    for key, values in frac:
        axes[2].plot(layers, values, marker="o", ms=3, label=key.split("_")[1])
    axes[2].set_ylim(-0.02, 1.02)
    axes[2].set_title("saturated / dead fraction" if frac else "no saturation or dead units for this phi")
    axes[2].set_xlabel("layer l")
    if frac:
        axes[2].legend()
    fig.suptitle(title or "activation statistics per layer")
    return fig


def jacobian_figure(
    sv: np.ndarray, width: int, predicted_mean: float | None = None, title: str = ""
) -> Figure:
    """Histogram of the squared singular values of the input-output Jacobian (log10), with their
    measured mean and the mean-field prediction prod_l chi_l."""
    fig = _figure(6.4, 3.8)
    ax = fig.add_subplot()
    lam = np.asarray(sv, float) ** 2
    eig_mean = lam.sum() / width  # zeros where input_dim < width
    positive = lam[lam > 0]
    ax.hist(np.log10(positive), bins=max(10, int(np.sqrt(positive.size)) + 1), color="C0", alpha=0.7)
    ax.axvline(np.log10(eig_mean), color="C0", lw=2, label=f"measured mean {eig_mean:.3g}")
    if predicted_mean and np.isfinite(predicted_mean) and predicted_mean > 0:
        ax.axvline(
            np.log10(predicted_mean), color="k", ls="--", label=f"theory prod chi_l {predicted_mean:.3g}"
        )
    ax.set_xlabel("log10 squared singular value of dh_D/dx")
    ax.set_ylabel("count")
    ax.set_title(title or "input-output Jacobian spectrum")
    ax.legend(fontsize=8)
    return fig


def sweep_profiles_figure(
    names: list[str], log10_profiles: list[np.ndarray], log10_theory: list[np.ndarray | None], title: str = ""
) -> Figure:
    """Every child's ||dL/dh_l|| against the layer l (log y), one colour per child, its mean-field
    prediction dashed in the same colour: straight lines whose slope is the rate."""
    fig = _figure(9.0, 4.6, right=3.2)
    ax = fig.add_subplot()
    colours = [f"C{i % 10}" for i in range(len(names))]
    styles = ["-", "-.", ":"]
    for i, (name, values, theory) in enumerate(zip(names, log10_profiles, log10_theory, strict=True)):
        values = np.asarray(values, dtype=float)
        layers = np.arange(1, values.size + 1)
        colour, style = colours[i], styles[i // 10 % 3]  # 30 lines apart before a pair repeats
        ax.plot(layers, 10.0**values, ls=style, color=colour, marker="o", ms=2.5, label=name)
        if theory is not None and np.any(np.isfinite(theory)):
            ax.plot(np.arange(1, len(theory) + 1), 10.0 ** np.asarray(theory), ls="--", lw=1, color=colour)
    ax.plot([], [], ls="--", color="k", lw=1, label="theory")
    ax.set_yscale("log")
    ax.set_xlabel("layer l")
    ax.set_ylabel("||dL/dh_l||")
    ax.set_title(title or "backpropagated gradient per layer, every job")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return fig


def factor_figure(
    factors: dict[str, list[str]], measured: np.ndarray, theory: np.ndarray, label: str, title: str = ""
) -> Figure:
    """One panel per swept factor: each job's ``measured`` value (dots) and its theory (open circles)
    against the factor's value; ``factors`` maps a factor to every job's value, in job order."""
    n = max(1, len(factors))
    fig = _figure(3.2 * n + 0.9, 3.6, top=0.65, wspace=0.15)
    axes = np.atleast_1d(fig.subplots(1, n, sharey=True))
    measured, theory = np.asarray(measured, float), np.asarray(theory, float)
    for ax, (factor, values) in zip(axes, factors.items(), strict=False):
        levels = list(dict.fromkeys(values))
        x = np.array([levels.index(v) for v in values], dtype=float)
        x += np.linspace(-0.15, 0.15, len(x)) if len(x) > len(levels) else 0.0  # spread repeats apart
        ax.plot(x, measured, "o", color="C0", ms=5, label="measured")
        if np.any(np.isfinite(theory)):
            ax.plot(x, theory, "o", mfc="none", color="k", ms=8, label="theory")
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.set_xticks(range(len(levels)), levels)
        ax.set_xlabel(factor)
    axes[0].set_ylabel(label)
    axes[0].legend(fontsize=8)
    fig.suptitle(title or f"{label} against each swept factor")
    return fig
