"""seaborn's faceting for the sweep figures: one panel per ``col`` value, lines per ``hue`` value, in
the figure config's order; shared by ``harness.sweep_plots`` and ``harness.phase_plots``."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

AXIS_LABELS = {"sigma_w2": "sigma_w^2", "chi1": "chi_1 (mean-field)", "sigma_b2": "sigma_b^2"}
FACTOR_LABELS = {"model.depth": "depth D", "model.width": "width n", "model.init_scale": "init scale",
                 "model.bias_std": "sigma_b", "model.skip_scale": "skip scale alpha", "init.batch_size":
                 "batch size B", "train.batch_size": "batch size B", "optim.lr": "learning rate",
                 "model.activation": "activation", "model.init": "init"}  # fmt: skip


def axis_label(factor: str, x_as: str | None = None) -> str:
    """An axis' words: the derived unit's, or the factor's (its last dotted part when unlisted)."""
    if x_as:
        return AXIS_LABELS.get(x_as, x_as)
    return FACTOR_LABELS.get(factor, factor.split(".")[-1])


def values(frame: Any, factor: str | None) -> list:
    """A factor's values in table order (the figure config's order)."""
    if factor is None:
        return [None]
    return list(dict.fromkeys(frame[factor]))


def grid(frame: Any, col: str | None, style: dict, title: str) -> Any:
    """seaborn's FacetGrid: one panel per ``col`` value, in the config's order, shared y."""
    import seaborn as sns

    cols = values(frame, col)
    width, height = style.get("width", 4.2 * len(cols)), style.get("height", 3.8)
    grid = sns.FacetGrid(frame, col=col, col_order=None if col is None else cols, sharex=False, sharey=True,
                         height=height, aspect=width / len(cols) / height, despine=False)  # fmt: skip
    grid.set_titles("" if col is None else f"{col.split('.')[-1]} = {{col_name}}")
    grid.figure.suptitle(style.get("title", title))
    return grid


def by_hue(part: Any, hue: str | None, hues: list, colours: list) -> list[tuple[Any, Any, Any]]:
    """(colour, hue value, its rows of ``part``) for each hue value, in order (all rows without a hue)."""
    return [(c, h, part if hue is None else part[part[hue] == h]) for c, h in zip(colours, hues, strict=True)]


def panels(grid: Any) -> list[tuple[Any, Any]]:
    """(axes, the rows of its panel) for each panel."""
    return [(grid.axes[0, j], part) for (_, j, _), part in grid.facet_data()]


def done(grid: Any) -> Figure:
    """The grid's figure, laid out and released by pyplot (the caller saves it)."""
    import matplotlib.pyplot as plt

    grid.tight_layout()
    plt.close(grid.figure)
    return grid.figure


def palette(n: int, name: str | None) -> list:
    import seaborn as sns

    return sns.color_palette(name or "colorblind", n)


def lineplot(
    ax: Any, rows: Any, x: str, y: str, hue: str | None, hues: list, colours: list, **kw: Any
) -> None:
    import seaborn as sns

    sns.lineplot(data=rows, x=x, y=y, hue=hue, hue_order=None if hue is None else hues,
                 palette=None if hue is None else colours, color=colours[0] if hue is None else None,
                 errorbar=None, sort=False, ax=ax, legend=False, **kw)  # fmt: skip
