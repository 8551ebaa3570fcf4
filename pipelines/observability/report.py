"""`featurestream report`: one self-contained HTML page about a run, from its run log.

Each plot is a matplotlib figure (``Figure`` + the Agg canvas: no pyplot, no display, no global backend
state), saved as a PNG in the output folder and embedded in the page as base64, so the HTML file alone can be
mailed or attached to a ticket, and the PNGs reused elsewhere. Plot functions take run-log entries and return a
figure; :func:`render_report` writes the files.

Plots: throughput over time, end-to-end latency percentiles, dead letters by reason, score distribution,
drift per feature (latest PSI and PSI over time), live precision/recall. A plot with nothing to show (say, no
model was scoring) still renders and says so, so every report has the same sections.
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import date2num
from matplotlib.figure import Figure

from pipelines.observability.histograms import LATENCY_BUCKETS, SCORE_BUCKETS, merge_counts
from pipelines.observability.run_log import (
    RunLogEntry,
    default_run_log,
    latency_percentiles,
    latest_per_batch,
    read_run_log,
)

if TYPE_CHECKING:
    from pipelines.config import Settings

REPORT_FILE = "report.html"
_SIZE = (9.0, 4.2)
_DPI = 100
_QUANTILE_STYLES = {"p50": "-", "p95": "--", "p99": ":"}
_TIME_LABEL = "time (UTC)"


@dataclass(frozen=True)
class ReportFiles:
    """What a report wrote: the HTML page and the PNG of each plot (by plot name)."""

    html: Path
    images: dict[str, Path]


# -- helpers ----------------------------------------------------------------------------------------------------


def _figure(title: str, columns: int = 1) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=_SIZE, dpi=_DPI)
    FigureCanvasAgg(figure)
    axes = [figure.add_subplot(1, columns, i + 1) for i in range(columns)]
    figure.suptitle(title)
    return figure, axes


def _nothing(figure: Figure, axes: Sequence[Axes], what: str) -> Figure:
    for ax in axes[1:]:
        ax.set_axis_off()
    axes[0].text(0.5, 0.5, f"no {what} in this run log", ha="center", va="center", fontsize=13, color="#666")
    axes[0].set_axis_off()
    return figure


def _x_axis(entries: Sequence[RunLogEntry]) -> tuple[list[float], str]:
    """Wall-clock time of each batch (matplotlib date numbers) if every entry has one, else cumulative
    batch-writer seconds (a log written without times)."""
    times = [entry.finished_at for entry in entries]
    if entries and all(t is not None for t in times):
        return [float(date2num(t)) for t in times if t is not None], _TIME_LABEL
    return [float(x) for x in np.cumsum([entry.seconds for entry in entries])], "batch-writer time (s)"


def _finish(figure: Figure, axes: Sequence[Axes], xlabel: str | None = None) -> Figure:
    for ax in axes:
        ax.grid(alpha=0.3)
    if xlabel is not None:
        axes[-1].set_xlabel(xlabel)
        if xlabel == _TIME_LABEL:
            for ax in axes:
                if ax.get_xlabel() == _TIME_LABEL:
                    ax.xaxis_date()
                    ax.tick_params(axis="x", labelrotation=30)
    figure.tight_layout()
    return figure


# -- plots ------------------------------------------------------------------------------------------------------


def plot_throughput(entries: Sequence[RunLogEntry]) -> Figure:
    """Records per second through the batch writer, per batch, and Spark's processing rate where logged."""
    figure, axes = _figure("Throughput")
    timed = [entry for entry in entries if entry.seconds > 0]
    if not timed:
        return _nothing(figure, axes, "timed batches")
    ax = axes[0]
    x, label = _x_axis(timed)
    ax.plot(x, [e.records_read / e.seconds for e in timed], marker="o", label="records read / batch second")
    ax.plot(x, [e.scored / e.seconds for e in timed], marker=".", label="scores / batch second")
    spark = [(xi, e.processed_rows_per_second) for xi, e in zip(x, timed, strict=True) if e.processed_rows_per_second]
    if spark:
        ax.plot([p[0] for p in spark], [p[1] for p in spark], linestyle="--", label="Spark processed rows/s")
    ax.set_ylabel("records / s")
    ax.set_ylim(bottom=0)
    ax.legend(loc="best")
    return _finish(figure, axes, label)


def plot_latency(entries: Sequence[RunLogEntry]) -> Figure:
    """End-to-end latency (event time -> score published) percentiles per batch."""
    figure, axes = _figure("End-to-end latency (event_time -> score published)")
    with_latency = [e for e in entries if any(v is not None for v in e.latency_seconds.values())]
    if not with_latency:
        return _nothing(figure, axes, "latency measurements")
    ax = axes[0]
    x, label = _x_axis(with_latency)
    for name, style in _QUANTILE_STYLES.items():
        points = [(xi, e.latency_seconds.get(name)) for xi, e in zip(x, with_latency, strict=True)]
        shown = [(xi, v) for xi, v in points if v is not None]
        if shown:
            ax.plot([p[0] for p in shown], [p[1] for p in shown], linestyle=style, marker="o", label=name)
    values = [v for e in with_latency for v in e.latency_seconds.values() if v]
    if values and max(values) / max(min(values), 1e-3) > 50:
        ax.set_yscale("log")
    ax.set_ylabel("seconds")
    ax.legend(loc="best")
    return _finish(figure, axes, label)


def plot_dead_letters(entries: Sequence[RunLogEntry]) -> Figure:
    """Dead letters by reason over the whole run."""
    figure, axes = _figure("Dead letters by reason")
    totals: Counter[str] = Counter()
    for entry in entries:
        totals.update(entry.dead_letters_by_reason)
    totals = Counter({reason: n for reason, n in totals.items() if n})
    if not totals:
        return _nothing(figure, axes, "dead letters")
    ax = axes[0]
    reasons = sorted(totals, key=lambda reason: totals[reason])
    bars = ax.barh(reasons, [totals[r] for r in reasons], color="#c0504d")
    ax.bar_label(bars, padding=3)
    ax.set_xlabel("records")
    return _finish(figure, axes)


def plot_score_distribution(entries: Sequence[RunLogEntry]) -> Figure:
    """How the published scores spread over [0, 1] (log scale: most payments score near 0)."""
    figure, axes = _figure("Score distribution")
    counts = merge_counts(e.score_counts for e in entries if e.score_counts)
    if not counts or not sum(counts):
        return _nothing(figure, axes, "score histograms")
    ax = axes[0]
    edges = [0.0, *SCORE_BUCKETS, 1.0]
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#4f81bd", edgecolor="white")
    if max(counts) > 20 * max(1, min(c for c in counts if c)):
        ax.set_yscale("log")
    ax.set_xlabel("score")
    ax.set_ylabel("scores")
    ax.set_xlim(0, 1)
    return _finish(figure, axes)


def plot_drift(entries: Sequence[RunLogEntry], psi_threshold: float) -> Figure:
    """Latest PSI per feature (bars, red over the threshold) and every feature's PSI over time."""
    figure, axes = _figure("Drift against the training baseline (PSI)", columns=2)
    with_drift = [e for e in entries if e.drift]
    if not with_drift:
        return _nothing(figure, axes, "drift measurements")
    latest: dict[str, float] = {}
    for entry in with_drift:
        for feature, values in entry.drift.items():
            if values.get("psi") is not None:
                latest[feature] = float(values["psi"] or 0.0)
    bars_ax, time_ax = axes
    names = sorted(latest, key=lambda name: latest[name])
    colours = ["#c0504d" if latest[n] >= psi_threshold else "#4f81bd" for n in names]
    bars_ax.barh(names, [latest[n] for n in names], color=colours)
    bars_ax.axvline(psi_threshold, color="#c0504d", linestyle="--", linewidth=1)
    bars_ax.set_xlabel("latest PSI")
    bars_ax.tick_params(axis="y", labelsize=7)
    x, label = _x_axis(with_drift)
    for feature in sorted(latest):
        series = [(xi, e.drift.get(feature, {}).get("psi")) for xi, e in zip(x, with_drift, strict=True)]
        shown = [(xi, v) for xi, v in series if v is not None]
        time_ax.plot([p[0] for p in shown], [p[1] for p in shown], linewidth=1, label=feature)
    time_ax.axhline(psi_threshold, color="#c0504d", linestyle="--", linewidth=1, label="threshold")
    time_ax.set_ylabel("PSI")
    if len(latest) <= 8:
        time_ax.legend(loc="best", fontsize=7)
    return _finish(figure, axes, label)


def plot_quality(entries: Sequence[RunLogEntry]) -> Figure:
    """Live precision, recall and ROC-AUC over the rolling window of labelled scores, per batch."""
    figure, axes = _figure("Live model quality (delayed labels, rolling window)")
    with_quality = [e for e in entries if e.quality and e.quality.get("labelled")]
    if not with_quality:
        return _nothing(figure, axes, "labelled scores")
    ax = axes[0]
    x, label = _x_axis(with_quality)
    for name in ("precision", "recall", "roc_auc"):
        series = [(xi, e.quality.get(name)) for xi, e in zip(x, with_quality, strict=True)]
        shown = [(xi, float(v)) for xi, v in series if v is not None]
        if shown:
            ax.plot([p[0] for p in shown], [p[1] for p in shown], marker="o", label=name)
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower left")
    return _finish(figure, axes, label)


# -- the page ---------------------------------------------------------------------------------------------------


def summary_rows(entries: Sequence[RunLogEntry]) -> list[tuple[str, str]]:
    """The run in a few lines: batches, counts, conservation, models, rates, latency, drift, quality."""
    batches = latest_per_batch(entries)
    read = sum(e.records_read for e in batches)
    valid = sum(e.valid for e in batches)
    dead = sum(e.dead_lettered for e in batches)
    scored = sum(e.scored for e in batches)
    seconds = sum(e.seconds for e in batches)
    rows = [
        ("batches", f"{len(batches)} (ids {batches[0].batch_id}..{batches[-1].batch_id})" if batches else "0"),
        ("log lines", f"{len(entries)} ({len(entries) - len(batches)} replayed batches)"),
        ("records read", f"{read:,}"),
        ("valid", f"{valid:,}"),
        ("dead-lettered", f"{dead:,}"),
        ("conservation (read = valid + dead-lettered)", "holds" if read == valid + dead else "BROKEN"),
        ("scores published", f"{scored:,}"),
        ("batch-writer throughput", f"{read / seconds:,.0f} records/s over {seconds:,.1f} s" if seconds else "n/a"),
    ]
    times = [e.finished_at for e in batches if e.finished_at is not None]
    if times:
        rows.insert(0, ("run", f"{min(times):%Y-%m-%d %H:%M:%S} .. {max(times):%Y-%m-%d %H:%M:%S} UTC"))
    versions = sorted({(e.model_name or "model", e.model_version) for e in batches if e.model_version is not None})
    rows.append(("models", ", ".join(f"{name} v{version}" for name, version in versions) or "none scoring"))
    latency = merge_counts(e.latency_counts for e in batches if e.latency_counts)
    if latency and sum(latency):
        percentiles = latency_percentiles(latency, LATENCY_BUCKETS)
        rows.append(("end-to-end latency", ", ".join(f"{k} {v:,.2f} s" for k, v in percentiles.items() if v)))
    drifted = sorted({f for e in batches for f, v in e.drift.items() if (v.get("drifting") or 0)})
    if drifted:
        rows.append(("drifted", ", ".join(drifted)))
    last_quality = next((e.quality for e in reversed(batches) if e.quality.get("labelled")), None)
    if last_quality:
        rows.append(("live quality (latest)", ", ".join(f"{k} {_fmt(v)}" for k, v in last_quality.items())))
    return rows


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "n/a" if value is None else str(value)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def render_report(
    entries: Sequence[RunLogEntry],
    out_dir: Path,
    *,
    title: str = "featurestream run report",
    source: Path | None = None,
    psi_threshold: float = 0.2,
) -> ReportFiles:
    """Write ``report.html`` and one PNG per plot into ``out_dir``; the page embeds the PNGs itself."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    batches = latest_per_batch(entries)
    plots: list[tuple[str, str, Callable[[], Figure]]] = [
        ("throughput", "Throughput over time", lambda: plot_throughput(batches)),
        ("latency", "Latency percentiles", lambda: plot_latency(batches)),
        ("dead_letters", "Dead letters by reason", lambda: plot_dead_letters(batches)),
        ("scores", "Score distribution", lambda: plot_score_distribution(batches)),
        ("drift", "Drift per feature", lambda: plot_drift(batches, psi_threshold)),
        ("quality", "Live precision / recall", lambda: plot_quality(batches)),
    ]
    images: dict[str, Path] = {}
    sections = []
    for name, heading, draw in plots:
        png = _png(draw())
        path = out_dir / f"{name}.png"
        path.write_bytes(png)
        images[name] = path
        encoded = base64.b64encode(png).decode("ascii")
        sections.append(
            f'<section><h2>{html.escape(heading)}</h2><img alt="{html.escape(heading)}" '
            f'src="data:image/png;base64,{encoded}"></section>'
        )
    table = "".join(
        f"<tr><th>{html.escape(key)}</th><td>{html.escape(value)}</td></tr>" for key, value in summary_rows(entries)
    )
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    origin = f" from <code>{html.escape(str(source))}</code>" if source is not None else ""
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 960px; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ text-align: left; padding: 0.25em 1em 0.25em 0; border-bottom: 1px solid #eee; }}
img {{ max-width: 100%; }} code {{ font-size: 0.9em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Generated {generated}{origin}.</p>
<table>{table}</table>
{"".join(sections)}
</body></html>
"""
    report = out_dir / REPORT_FILE
    report.write_text(page, encoding="utf-8")
    return ReportFiles(report, images)


def write_report(settings: Settings, *, run_log: Path | None = None, out_dir: Path | None = None) -> ReportFiles:
    """The report of the configured job's run log (or ``run_log``) into ``out_dir`` (default: a new
    timestamped folder under ``observability.report_dir``, else ``<state_dir>/reports``)."""
    source = run_log or default_run_log(settings)
    entries = read_run_log(source)
    if out_dir is None:
        root = settings.observability.report_dir or settings.stack.state_dir / "reports"
        out_dir = root / f"{settings.stream.query_name}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    return render_report(
        entries,
        out_dir,
        title=f"featurestream run report: {settings.stream.query_name}",
        source=source,
        psi_threshold=settings.observability.psi_threshold,
    )
