"""The common runner of ``polchain bench``: repetitions, median and spread, a table, JSON, a plot.

A benchmark here never reports one shot. Each one runs its measurement ``reps`` times
(interleaving the variants it compares inside every repetition, so that whatever else this
shared machine runs hits them alike) and reports each figure as :func:`summarize` gives
it: the median with the spread (min, max and the interquartile range), and every value.

Each bench module exposes ``run(ctx: Context) -> Report``; :func:`finish` prints the
report's table with rich, writes ``<out>/<name>.json`` through benches/record.py (machine,
library versions, the exact command) and ``<out>/<name>.png`` with matplotlib (Agg, no
display needed). The JSON keys every record has, whatever the bench:

    bench, quick, reps, table {title, columns, rows}, extra_tables, results, notes, plot,
    machine, command, time

and ``results`` holds the bench's own figures (tests/test_bench_cli.py pins each schema).
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from benches.record import write_record

PlotFn = Callable[[Any], None]  # receives a matplotlib Figure


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Median, min, max, quartiles (the "inclusive" method: defined from 1 value up) and the
    values themselves. An empty sequence is a bug in the caller: ValueError."""
    if not values:
        raise ValueError("summarize: no values")
    vals = [float(v) for v in values]
    q1, _, q3 = statistics.quantiles(vals, n=4, method="inclusive") if len(vals) > 1 else (vals[0],) * 3
    return {
        "median": statistics.median(vals), "min": min(vals), "max": max(vals),
        "q1": q1, "q3": q3, "n": len(vals), "values": vals,
    }


def fmt(stat: dict[str, Any] | None, digits: int = 0, unit: str = "") -> str:
    """``median (min–max)`` of a summary, for a table cell; ``-`` when absent."""
    if not stat:
        return "-"
    spec = f",.{digits}f"
    if "min" not in stat or "max" not in stat or stat.get("n") == 1:
        return f"{stat['median']:{spec}}{unit}"
    return f"{stat['median']:{spec}}{unit} ({stat['min']:{spec}}–{stat['max']:{spec}})"


@dataclass
class Report:
    """What a bench hands back: its table, its figures and how to plot them."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    results: dict[str, Any]
    plot: PlotFn | None = None
    notes: list[str] = field(default_factory=list)
    extra_tables: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)


@dataclass
class Context:
    """What a bench gets: its size, repetitions, where output goes and a console."""

    name: str
    quick: bool
    reps: int
    out: Path
    command: str
    console: Console = field(default_factory=lambda: Console(width=None if _tty() else 320))
    options: dict[str, Any] = field(default_factory=dict)

    @contextlib.contextmanager
    def progress(self, total: int, description: str) -> Iterator[Callable[[int], None]]:
        """A rich progress bar of ``total`` steps; yields ``advance(n=1)``. Rich draws it
        live on a terminal and once at the end elsewhere (logs, CI)."""
        bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=Console(stderr=True), transient=False,
        )
        with bar:
            task = bar.add_task(description, total=total)

            def advance(n: int = 1) -> None:
                bar.advance(task, n)

            yield advance


def _tty() -> bool:
    return Console().is_terminal


def finish(ctx: Context, report: Report) -> dict[str, Path]:
    """Print ``report``'s table, write its JSON record and PNG plot under ``ctx.out``."""
    for title, columns, rows in [(report.title, report.columns, report.rows), *report.extra_tables]:
        table = Table(title=title, title_justify="left")
        for i, col in enumerate(columns):
            table.add_column(col, justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*row)
        ctx.console.print(table)
    for note in report.notes:
        ctx.console.print(note, highlight=False)
    ctx.out.mkdir(parents=True, exist_ok=True)
    png = ctx.out / f"{ctx.name}.png"
    plotted = False
    if report.plot is not None:
        plotted = _plot(report.plot, png)
    path = write_record(
        ctx.out / f"{ctx.name}.json", ctx.name, command=ctx.command, quick=ctx.quick, reps=ctx.reps,
        table={"title": report.title, "columns": report.columns, "rows": report.rows},
        extra_tables=[{"title": t, "columns": c, "rows": r} for t, c, r in report.extra_tables],
        results=report.results, notes=report.notes, plot=png.name if plotted else None,
    )
    if plotted:
        print(f"wrote {png}")
    return {"json": path, **({"png": png} if plotted else {})}


def _plot(draw: PlotFn, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError:  # the table and the JSON still stand
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return False
    fig = plt.figure(figsize=(8, 4.8), dpi=100)
    try:
        draw(fig)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return True


def errorbars(stats: Sequence[dict[str, Any]]) -> tuple[list[float], list[list[float]]]:
    """(medians, [below, above]) for matplotlib's ``yerr`` from summaries: the min–max spread."""
    med = [s["median"] for s in stats]
    return med, [[m - s["min"] for m, s in zip(med, stats, strict=True)],
                 [s["max"] - m for m, s in zip(med, stats, strict=True)]]
