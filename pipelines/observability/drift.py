"""Drift of live traffic against the training baseline: PSI per feature and for the score, KS where it fits.

Pure: no Spark, no Kafka, no clock. A :class:`DriftBaseline` is computed once from the training frame and the
model's scores on it (:func:`build_baseline`) and stored as JSON next to the model version
(:data:`BASELINE_FILE`); the job keeps a :class:`DriftMonitor` with the latest ``window`` values per feature and
asks it, once per batch, for a :class:`DriftReport`.

Why these tests, and how they are made robust:

- **PSI** (population stability index) over bins whose edges are the baseline's quantiles, so every bin holds
  about the same share of training rows whatever the feature's scale or skew. Missing values (a card's first
  payment has no "seconds since previous") get a bin of their own: a feature going missing is drift too. Empty
  bins are clamped to a small epsilon so the logarithm stays finite. The usual reading: < 0.1 stable,
  0.1-0.2 moderate, > 0.2 significant (the default threshold).
- **KS** (two-sample Kolmogorov-Smirnov, scipy) of the window against a sample kept in the baseline. On windows
  of thousands of values a tiny, harmless shift is already "significant", so a KS result counts as drift only
  if the p-value is below its threshold *and* the statistic (the largest gap between the two CDFs) is at least
  ``ks_statistic_threshold``. Checked every batch, a bare p-value would also fire by chance on stable traffic.
- A feature is judged only once its window holds ``min_samples`` values; an alert is raised when one of its
  tests *crosses* its threshold, not again for every batch it stays over.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.observability.errors import BaselineError

if TYPE_CHECKING:
    import pandas as pd

    from pipelines.config import ObservabilitySettings

BASELINE_FILE = "drift_baseline.json"
"""File name of a model version's drift baseline, next to ``model.ubj`` and ``metadata.json``."""
BASELINE_FORMAT_VERSION = 1
SCORE = "score"
"""The name the model's score distribution goes by in baselines, reports and metrics."""
PSI_EPSILON = 1e-4


# -- pure statistics --------------------------------------------------------------------------------------------


def _as_float_array(values: ArrayLike) -> NDArray[np.float64]:
    """Values as a flat float64 array, missing ones (None, NaN, pandas' NA, Arrow nulls) as NaN."""
    to_numpy = getattr(values, "to_numpy", None)
    if to_numpy is not None:  # pandas: nullable dtypes need na_value to become float
        try:
            return np.asarray(to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64).ravel()
        except TypeError:
            pass  # e.g. a pyarrow array, whose to_numpy takes other arguments
    return np.asarray(values, dtype=np.float64).ravel()


def quantile_edges(values: ArrayLike, bins: int) -> tuple[float, ...]:
    """Interior bin edges at the quantiles 1/bins, ..., (bins-1)/bins of the non-missing values, deduplicated.

    Ties collapse edges (a count feature that is 1 for half the rows keeps one edge at 1), so a feature may end
    up with fewer bins than asked; that is what its distribution supports.
    """
    if bins < 2:
        raise ValueError("bins must be >= 2")
    present = _as_float_array(values)
    present = present[~np.isnan(present)]
    if present.size == 0:
        return ()
    # Empirical quantiles (no interpolation): every edge is a value the baseline holds, so ties stay ties.
    quantiles = np.quantile(present, np.linspace(0.0, 1.0, bins + 1)[1:-1], method="inverted_cdf")
    return tuple(float(edge) for edge in np.unique(quantiles))


def bin_counts(values: ArrayLike, edges: Sequence[float]) -> NDArray[np.int64]:
    """Counts per bin: ``len(edges) + 1`` value bins (``edges[i-1] < v <= edges[i]``), then one for missing."""
    array = _as_float_array(values)
    missing = np.isnan(array)
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), array[~missing], side="left")
    counts = np.bincount(index, minlength=len(edges) + 1).astype(np.int64)
    return np.append(counts, np.int64(missing.sum()))


def psi(expected: ArrayLike, actual: ArrayLike, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of ``actual`` against ``expected`` (both counts or proportions per bin).

    ``sum((a - e) * ln(a / e))`` over bins, each side normalised to proportions and clamped below at
    ``epsilon`` so an empty bin gives a large but finite contribution.
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.ndim != 1:
        raise ValueError(f"expected and actual must be 1-d of one length, got {e.shape} and {a.shape}")
    if e.sum() <= 0 or a.sum() <= 0:
        raise ValueError("PSI needs at least one observation on each side")
    e = np.clip(e / e.sum(), epsilon, None)
    a = np.clip(a / a.sum(), epsilon, None)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_test(baseline_sample: ArrayLike, values: ArrayLike) -> tuple[float, float] | None:
    """(statistic, p-value) of the two-sample KS test on the non-missing values; None if either side is empty."""
    from scipy.stats import ks_2samp  # type: ignore[import-untyped]  # scipy comes with xgboost

    left = _as_float_array(baseline_sample)
    right = _as_float_array(values)
    left, right = left[~np.isnan(left)], right[~np.isnan(right)]
    if left.size == 0 or right.size == 0:
        return None
    result = ks_2samp(left, right)
    return float(result.statistic), float(result.pvalue)


# -- the baseline -----------------------------------------------------------------------------------------------


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeatureBaseline(_Record):
    """One feature's (or the score's) training distribution: quantile bins, their shares, and a KS sample."""

    edges: tuple[float, ...] = Field(description="Interior bin edges; bin i holds edges[i-1] < v <= edges[i].")
    proportions: tuple[float, ...] = Field(description="Share of training rows per bin, the missing bin last.")
    sample: tuple[float, ...] = Field(description="Non-missing training values drawn at random, for the KS test.")
    rows: int = Field(description="Training rows the distribution was computed from.")

    def model_post_init(self, __context: Any) -> None:
        if len(self.proportions) != len(self.edges) + 2:
            raise ValueError(f"{len(self.edges)} edges need {len(self.edges) + 2} proportions")
        if list(self.edges) != sorted(self.edges):
            raise ValueError("edges must be sorted")

    @classmethod
    def from_values(cls, values: ArrayLike, *, bins: int, sample_size: int, seed: int) -> FeatureBaseline:
        array = _as_float_array(values)
        edges = quantile_edges(array, bins)
        counts = bin_counts(array, edges)
        present = array[~np.isnan(array)]
        rng = np.random.default_rng(seed)
        sample = present if present.size <= sample_size else rng.choice(present, size=sample_size, replace=False)
        return cls(
            edges=edges,
            proportions=tuple(float(c) / max(1, array.size) for c in counts),
            sample=tuple(float(v) for v in np.sort(sample)),
            rows=int(array.size),
        )

    def psi_of(self, values: ArrayLike) -> float | None:
        """PSI of ``values`` against this baseline; None for no values."""
        counts = bin_counts(values, self.edges)
        return psi(self.proportions, counts) if counts.sum() else None


class DriftBaseline(_Record):
    """Training distributions of the model's features and of its scores; stored with the model version."""

    format_version: int = BASELINE_FORMAT_VERSION
    features: dict[str, FeatureBaseline]
    score: FeatureBaseline | None = Field(default=None, description="The model's scores on the training frame.")

    @property
    def names(self) -> list[str]:
        """What a monitor judges: the features, then the score (if the baseline has one)."""
        return [*self.features, *([SCORE] if self.score is not None else [])]

    def distribution(self, name: str) -> FeatureBaseline:
        if name == SCORE and self.score is not None:
            return self.score
        try:
            return self.features[name]
        except KeyError:
            raise BaselineError(f"the drift baseline has no feature {name!r} (it has {self.names})") from None

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> DriftBaseline:
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise BaselineError(f"not a drift baseline: {exc}") from exc


def build_baseline(
    frame: pd.DataFrame,
    feature_names: Iterable[str],
    scores: ArrayLike | None = None,
    *,
    bins: int = 10,
    sample_size: int = 2000,
    seed: int = 0,
) -> DriftBaseline:
    """The baseline of a training frame: every named feature column, and the model's ``scores`` on those rows.

    Call it from training with the frame the model was fitted on (and its predictions), then
    :func:`save_baseline` into the version's folder, so the stream compares live traffic with exactly what the
    model learnt from.
    """
    names = list(feature_names)
    if SCORE in names:
        raise BaselineError(f"a feature may not be called {SCORE!r}: that name is the model's score")
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise BaselineError(f"the training frame has no column(s) {missing}")
    if len(frame) == 0:
        raise BaselineError("cannot build a drift baseline from an empty frame")
    features = {
        name: FeatureBaseline.from_values(
            frame[name].to_numpy(dtype=np.float64, na_value=np.nan), bins=bins, sample_size=sample_size, seed=seed
        )
        for name in names
    }
    score = None
    if scores is not None:
        score_values = _as_float_array(scores)
        if score_values.size != len(frame):
            raise BaselineError(f"{score_values.size} scores for {len(frame)} training rows")
        score = FeatureBaseline.from_values(score_values, bins=bins, sample_size=sample_size, seed=seed)
    return DriftBaseline(features=features, score=score)


def baseline_path(version_dir: Path) -> Path:
    """Where a model version's baseline lives: ``versions/<N>/drift_baseline.json``."""
    return Path(version_dir) / BASELINE_FILE


def save_baseline(baseline: DriftBaseline, path: Path) -> Path:
    """Write atomically (temporary file + rename) so a reader never sees half a baseline."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(baseline.to_json() + "\n", encoding="utf-8")
    temporary.replace(path)
    return path


def load_baseline(path: Path) -> DriftBaseline:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(f"no drift baseline at {path}") from None
    except OSError as exc:
        raise BaselineError(f"cannot read the drift baseline {path}: {exc.strerror}") from exc
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{path} is not JSON: {exc}") from exc
    return DriftBaseline.from_json(text)


# -- the rolling monitor ----------------------------------------------------------------------------------------


class RollingWindow:
    """The latest ``size`` values of one feature (a ring buffer: memory fixed at ``size`` floats)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("window size must be >= 1")
        self._values = np.full(size, np.nan, dtype=np.float64)
        self._next = 0
        self._filled = 0

    def __len__(self) -> int:
        return self._filled

    def extend(self, values: ArrayLike) -> None:
        array = _as_float_array(values)
        size = self._values.size
        if array.size >= size:
            self._values[:] = array[-size:]
            self._next, self._filled = 0, size
            return
        end = self._next + array.size
        if end <= size:
            self._values[self._next : end] = array
        else:
            split = size - self._next
            self._values[self._next :] = array[:split]
            self._values[: end - size] = array[split:]
        self._next = end % size
        self._filled = min(size, self._filled + array.size)

    def values(self) -> NDArray[np.float64]:
        """The window's values (order does not matter to the tests that read them)."""
        return self._values[: self._filled].copy() if self._filled < self._values.size else self._values.copy()


@dataclass(frozen=True)
class DriftResult:
    """One feature's (or the score's) judgement over the current window."""

    feature: str
    samples: int
    judged: bool
    psi: float | None = None
    ks_statistic: float | None = None
    ks_pvalue: float | None = None
    drifting: bool = False
    reasons: tuple[str, ...] = ()
    """Which tests crossed their threshold: ``psi`` and/or ``ks``."""


@dataclass(frozen=True)
class DriftReport:
    """Every feature's result, which thresholds were newly crossed, and which features came back under all."""

    results: tuple[DriftResult, ...]
    crossed: tuple[tuple[str, str], ...]
    """(feature, test) pairs over their threshold now and not at the previous report: one alert each."""
    recovered: tuple[str, ...]

    @property
    def crossings(self) -> tuple[DriftResult, ...]:
        """The results of the features with a newly crossed threshold."""
        features = {feature for feature, _ in self.crossed}
        return tuple(result for result in self.results if result.feature in features)

    @property
    def drifting(self) -> list[str]:
        return [result.feature for result in self.results if result.drifting]

    def result(self, feature: str) -> DriftResult:
        for result in self.results:
            if result.feature == feature:
                return result
        raise KeyError(feature)

    def as_dict(self) -> dict[str, dict[str, float | None]]:
        """Judged results as plain numbers (the run log's ``drift`` field)."""
        return {
            r.feature: {
                "psi": r.psi,
                "ks_statistic": r.ks_statistic,
                "ks_pvalue": r.ks_pvalue,
                "drifting": 1.0 if r.drifting else 0.0,
            }
            for r in self.results
            if r.judged
        }


class DriftMonitor:
    """Rolling windows of live values per baseline feature (and score), judged against the baseline on demand."""

    def __init__(
        self,
        baseline: DriftBaseline,
        *,
        window: int = 5000,
        min_samples: int = 1000,
        psi_threshold: float = 0.2,
        ks_pvalue_threshold: float = 0.001,
        ks_statistic_threshold: float = 0.1,
    ) -> None:
        if min_samples > window:
            raise ValueError(f"min_samples ({min_samples}) cannot exceed the window ({window})")
        self.baseline = baseline
        self.min_samples = min_samples
        self.psi_threshold = psi_threshold
        self.ks_pvalue_threshold = ks_pvalue_threshold
        self.ks_statistic_threshold = ks_statistic_threshold
        self._windows = {name: RollingWindow(window) for name in baseline.names}
        self._firing: set[tuple[str, str]] = set()

    @classmethod
    def from_settings(cls, baseline: DriftBaseline, settings: ObservabilitySettings) -> DriftMonitor:
        return cls(
            baseline,
            window=settings.drift_window,
            min_samples=settings.drift_min_samples,
            psi_threshold=settings.psi_threshold,
            ks_pvalue_threshold=settings.ks_pvalue_threshold,
            ks_statistic_threshold=settings.ks_statistic_threshold,
        )

    def update(self, features: Mapping[str, ArrayLike] | None = None, scores: ArrayLike | None = None) -> None:
        """Add a batch's values (columns by feature name; names the baseline lacks are ignored) and scores."""
        for name, values in (features or {}).items():
            window = self._windows.get(name)
            if window is not None and name != SCORE:
                window.extend(values)
        if scores is not None and SCORE in self._windows:
            self._windows[SCORE].extend(scores)

    def update_frame(self, frame: pd.DataFrame, score_column: str | None = None) -> None:
        """:meth:`update` from a pandas frame (e.g. a batch's Arrow table ``.to_pandas()``)."""
        columns = {
            name: frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
            for name in self.baseline.features
            if name in frame.columns
        }
        scores = frame[score_column].to_numpy(dtype=np.float64) if score_column is not None else None
        self.update(columns, scores)

    def evaluate(self) -> DriftReport:
        """Judge every feature with enough values; report thresholds crossed since the previous call.

        Each (feature, test) pair alerts when it crosses, not again while it stays over; a feature not judged
        this time (too few values) keeps its previous state, so silence neither raises nor clears anything.
        """
        results = [self._judge(name) for name in self.baseline.names]
        unjudged = {r.feature for r in results if not r.judged}
        firing = {(r.feature, test) for r in results for test in r.reasons}
        current = firing | {pair for pair in self._firing if pair[0] in unjudged}
        crossed = tuple((r.feature, t) for r in results for t in r.reasons if (r.feature, t) not in self._firing)
        recovered = tuple(sorted({f for f, _ in self._firing} - {f for f, _ in current}))
        self._firing = current
        return DriftReport(tuple(results), crossed, recovered)

    def _judge(self, name: str) -> DriftResult:
        values = self._windows[name].values()
        if values.size < self.min_samples:
            return DriftResult(name, int(values.size), judged=False)
        distribution = self.baseline.distribution(name)
        value_psi = distribution.psi_of(values)
        ks = ks_test(distribution.sample, values) if distribution.sample else None
        reasons = []
        if value_psi is not None and value_psi >= self.psi_threshold:
            reasons.append("psi")
        if ks is not None and ks[1] < self.ks_pvalue_threshold and ks[0] >= self.ks_statistic_threshold:
            reasons.append("ks")
        return DriftResult(
            feature=name,
            samples=int(values.size),
            judged=True,
            psi=value_psi,
            ks_statistic=None if ks is None else ks[0],
            ks_pvalue=None if ks is None else ks[1],
            drifting=bool(reasons),
            reasons=tuple(reasons),
        )
