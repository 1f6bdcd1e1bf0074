"""The report's figures (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

from lambdafit import cost, limits
from lambdafit.cost import CatalogCost
from lambdafit.summary import MIB, PHASES, CatalogSummary, label, short, summaries

FIRST_RECOMMENDATION = "lambda-fit-first-recommendation.png"
DEPENDENCIES = "lambda-fit-dependencies.png"
TOP_PACKAGES = 10
PHASE_COLOURS = ("#bbbbbb", "#8da0cb", "#a6d854", "#fc8d62", "#66c2a5", "#333333")


def _pyplot() -> Any:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


COST_PLOT = "lambda-fit-cost.png"
DESIGN_STYLE = {
    "Fargate": ("#1b9e77", "-"),
    "Lambda": ("#d95f02", "--"),
    "Personalize": ("#7570b3", ":"),
}


def render(results: dict[str, Any], out: Path, costs: list[CatalogCost] | None = None) -> None:
    plt = _pyplot()
    for name, draw in ((FIRST_RECOMMENDATION, _first), (DEPENDENCIES, _dependencies)):
        figure = draw(plt, results)
        figure.savefig(out / name, dpi=110, bbox_inches="tight")
        plt.close(figure)
    if costs:
        render_cost(plt, costs, out)


def render_cost(plt: Any, costs: list[CatalogCost], out: Path) -> None:
    """Cost per million against steady traffic, one panel per priced catalog, crossings marked."""
    figure, axes = plt.subplots(
        1, len(costs), figsize=(5.4 * len(costs), 5), sharey=True, squeeze=False
    )
    levels = [10 ** (i / 50) for i in range(151)]  # 1 .. 1,000 req/s
    for ax, c in zip(axes[0], costs, strict=True):
        for design in cost.DESIGNS:
            colour, style = DESIGN_STYLE[design]
            ax.plot(levels, [c.per_million(design, x) for x in levels], style, color=colour,
                    linewidth=2, label=design)  # fmt: skip
        for (a, _b), points in c.crossings().items():
            for x in points:
                y = c.per_million(a, x)
                ax.plot(x, y, "o", color="black", markersize=5)
                ax.annotate(f"{x:,.0f} req/s", (x, y), textcoords="offset points", xytext=(6, 6),
                            fontsize=8)  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(cost.LOW, cost.HIGH)
        ax.set_xlabel("steady traffic, requests per second (log)")
        ax.grid(True, which="major", alpha=0.3)
        ax.set_title(c.name, fontsize=10)
    axes[0][0].set_ylabel("USD per million recommendations (log)")
    axes[0][0].legend(fontsize=9, loc="lower left")
    prices = costs[0].prices
    figure.suptitle(
        f"The cost of a million recommendations, {prices.region}, prices as of "
        f"{prices.as_of.isoformat()} (lambdafit/prices.toml)",
        fontsize=11,
    )
    figure.savefig(out / COST_PLOT, dpi=110, bbox_inches="tight")
    plt.close(figure)


def _first(plt: Any, results: dict[str, Any]) -> Any:
    rows = summaries(results)
    synthetic = [r for r in rows if r.synthetic]
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [1.25, 1]}
    )
    _series(left, synthetic, [r for r in rows if not r.synthetic])
    _phases(right, rows)
    figure.suptitle(
        f"Time to first recommendation, measured on {results['machine']['cores']} cores "
        f"({results['machine']['date']})",
        fontsize=12,
    )
    return figure


def _series(ax: Any, synthetic: list[CatalogSummary], real: list[CatalogSummary]) -> None:
    xs = [r.size for r in synthetic]
    ax.axhline(limits.INIT_SECONDS, color="crimson", linestyle="--", linewidth=1.2)
    ax.text(
        0.7, limits.INIT_SECONDS / 1.7, "Lambda init limit: 10 s", color="crimson",
        fontsize=9, transform=ax.get_yaxis_transform(),
    )  # fmt: skip
    lines = (
        ("Lambda-style cold start (fresh process → answer)", "cold_median", "#d95f02", "o-"),
        ("container startup (once per replica) → answer", "container_first", "#7570b3", "s--"),
        ("Lambda-style warm invocation (p50)", "lambda_p50", "#e6ab02", "^:"),
        ("warm container request over HTTP (p50)", "container_p50", "#1b9e77", "D-"),
    )
    for name, field, colour, style in lines:
        pts = [(r.size, getattr(r, field)) for r in synthetic if getattr(r, field) is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), style, color=colour, label=name, linewidth=1.8)
        for r in real:
            if getattr(r, field) is not None:
                ax.plot(r.size, getattr(r, field), "*", color=colour, markersize=13)
    if synthetic:
        errors = [
            [r.cold_median - r.cold_min for r in synthetic],
            [r.cold_max - r.cold_median for r in synthetic],
        ]
        ax.errorbar(xs, [r.cold_median for r in synthetic], yerr=errors, fmt="none",
                    ecolor="#d95f02", capsize=3)  # fmt: skip
    ax.plot([], [], "*", color="grey", markersize=11, label="★ = MovieLens catalog")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("movies in the catalog")
    ax.set_ylabel("seconds (log scale)")
    ax.set_xticks([r.size for r in synthetic + real])
    ax.set_xticklabels(
        [short(r.size) if r.synthetic else f"\nML {r.size:,}" for r in synthetic + real],
        fontsize=8,
    )
    ax.minorticks_off()
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    ax.set_title("cold Lambda-style vs warm container", fontsize=10)


def _phases(ax: Any, rows: list[CatalogSummary]) -> None:
    names = [label(r) for r in rows]
    bottoms = [0.0] * len(rows)
    for phase, colour in zip(PHASES, PHASE_COLOURS, strict=True):
        heights = [r.phases[phase] for r in rows]
        ax.barh(names, heights, left=bottoms, color=colour, label=phase)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    for y, total in enumerate(bottoms):
        ax.text(total, y, f" {total:.1f} s", va="center", fontsize=9)
    ax.axvline(
        limits.INIT_SECONDS, color="crimson", linestyle="--", linewidth=1.2, label="10 s init limit"
    )
    longest = max([*bottoms, limits.INIT_SECONDS])
    if longest > 100:  # phases of milliseconds and of minutes: a log axis shows both
        ax.set_xscale("log")
        ax.set_xlim(0.01, longest * 3)
    else:
        ax.set_xlim(0, longest * 1.2)
    ax.set_xlabel("seconds" + (" (log scale)" if longest > 100 else ""))
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=4)
    ax.set_title("the median Lambda-style cold start, by phase", fontsize=10)


def _dependencies(plt: Any, results: dict[str, Any]) -> Any:
    packages = results["dependencies"]
    top = packages[:TOP_PACKAGES]
    rest = packages[TOP_PACKAGES:]
    names = [f"all {len(packages)} runtime packages"] + [p["name"] for p in top]
    names.append(f"the other {len(rest)}")
    installed = [sum(p["installed_bytes"] for p in packages)] + [p["installed_bytes"] for p in top]
    installed.append(sum(p["installed_bytes"] for p in rest))
    wheels = [sum(p["wheel_bytes"] or 0 for p in packages)] + [p["wheel_bytes"] or 0 for p in top]
    wheels.append(sum(p["wheel_bytes"] or 0 for p in rest))
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2), sharey=True)
    panels = (
        (left, installed, limits.UNZIPPED_BYTES, "installed (unzipped)", "250 MB unzipped limit"),
        (right, wheels, limits.ZIP_UPLOAD_BYTES, "wheel (zipped), from uv.lock", "50 MB zip limit"),
    )
    for ax, sizes, limit, title, limit_label in panels:
        mib = [s / MIB for s in sizes]
        colours = ["#d95f02" if v > limit / MIB else "#1b9e77" for v in mib]
        colours[0] = "#7570b3"
        ax.barh(names, mib, color=colours)
        for y, v in enumerate(mib):
            ax.text(v, y, f" {v:,.1f}", va="center", fontsize=8)
        ax.axvline(limit / MIB, color="crimson", linestyle="--", linewidth=1.2, label=limit_label)
        if ax is right and "tensorflow-cpu" in names:
            ax.plot(
                50, names.index("tensorflow-cpu"), "D", color="black", markerfacecolor="white",
                label="the article's TensorFlow figure (~50 MB zipped)",
            )  # fmt: skip
        ax.set_xlim(0, max(mib) * 1.18)
        ax.set_xlabel("MB (MiB)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=9, loc="lower right")
    left.invert_yaxis()
    figure.suptitle("Runtime dependencies of movie-recs against Lambda's package limits")
    return figure
