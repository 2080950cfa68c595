"""Comparison plots (matplotlib, headless).

Figures are built with matplotlib's object-oriented API (``matplotlib.figure.Figure``), which
renders to files without pyplot or a GUI backend: importing this module changes no global
matplotlib state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure


def plot_pass_at_k(
    curves: Mapping[str, Mapping[int, tuple[float, float]]], path: str | Path, title: str = ""
) -> Path:
    """One line per run/arm: ``curves[name][k] = (mean, half_width)``; log2 k axis."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for name, curve in curves.items():
        ks = sorted(curve)
        means = [curve[k][0] for k in ks]
        errs = [curve[k][1] for k in ks]
        ax.errorbar(ks, means, yerr=errs, marker="o", capsize=3, label=name)
    ax.set_xscale("log", base=2)
    ax.set_title(title or "pass@k")
    return _save(fig, ax, path, "k", "pass@k")


def plot_quality_vs_distinct(
    points: Sequence[tuple[str, float, float, float, float]],
    path: str | Path,
    x_label: str = "distinct@k",
    y_label: str = "mean quality",
) -> Path:
    """One point per run/arm: ``(name, x, x_half_width, y, y_half_width)``."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for name, x, xerr, y, yerr in points:
        ax.errorbar([x], [y], xerr=[xerr], yerr=[yerr], marker="o", capsize=3, label=name)
    return _save(fig, ax, path, x_label, y_label)


def plot_training_curves(
    series: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]]],
    path: str | Path,
    note: str = "",
) -> Path:
    """One panel per metric, one line per arm: ``series[metric][arm] = (steps, mean, half)``;
    ``note`` is added to each panel's title."""
    metrics = list(series)
    fig = Figure(figsize=(4.5 * len(metrics), 3.5))
    axes = fig.subplots(1, len(metrics), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for arm, (steps, mean, half) in series[metric].items():
            line = ax.plot(steps, mean, label=arm)[0]
            lower = [m - h for m, h in zip(mean, half, strict=True)]
            upper = [m + h for m, h in zip(mean, half, strict=True)]
            ax.fill_between(steps, lower, upper, alpha=0.15, color=line.get_color())
        ax.set_title(f"{metric} ({note})" if note else metric, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def _save(fig, ax, path: str | Path, x_label: str, y_label: str) -> Path:
    """Label, grid and legend one panel, write the figure, free it."""
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return Path(path)
