"""The one aggregation path: every table (CLI, Markdown, LaTeX, CSV, HTML) reads these functions.

Aggregates are recomputed from per-case values in result records; they are never read from a record.
Records are typed (:class:`cmsbench.results.RunRecord`); a board's per-case values come from the long
DataFrame of :func:`cmsbench.results.records_frame`. A metric's direction is the one its records state
(``scoring.metrics``), else the metric registry's, else (records of cmsbench 0.1) the name table below.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cmsbench.errors import UnknownNameError
from cmsbench.results import ResultSet, RunRecord, load, record_from_dict, records_frame
from cmsbench.results.identity import canonical


@dataclass(frozen=True)
class Summary:
    """Statistics of one metric in one region over the cases of one run."""

    region: str
    metric: str
    n: int
    mean: float
    std: float
    median: float
    ci_low: float
    ci_high: float
    seed_sd: float = float("nan")  # std over seeds of the per-seed mean (NaN with one seed)
    ci_method: str = "studentized"


@dataclass(frozen=True)
class SetSummary:
    """A set-level metric of one method in one region: the value the runner computed over the whole test set
    with the metric's own interval (never recomputed here: there are no per-case values to resample).

    With several seeds, ``value`` is the mean of the seeds' values and the interval spans the seeds'
    intervals (lowest low, highest high); ``reason`` says why the value is missing (NaN) when it is.
    """

    region: str
    metric: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    seeds: int
    reason: str | None = None

    @property
    def defined(self) -> bool:
        return not math.isnan(self.value)


def set_summary(records: Sequence[RunRecord], region: str, metric: str) -> SetSummary:
    """The :class:`SetSummary` of ``metric`` in ``region`` over the records (seeds) of one method."""
    nan = float("nan")
    scores = [rec.set_scores.get(region, {}).get(metric) for rec in records]
    scores = [s for s in scores if s is not None]
    values = [_as_float(s.value) for s in scores]
    defined = [(v, s) for v, s in zip(values, scores, strict=True) if not math.isnan(v)]
    if not defined:
        reasons = list(dict.fromkeys(s.reason for s in scores if s.reason))
        return SetSummary(region, metric, nan, nan, nan, max((s.n for s in scores), default=0), len(scores),
                          "; ".join(reasons) or "not computed")
    lows = [_as_float(s.ci_low) for _, s in defined]
    highs = [_as_float(s.ci_high) for _, s in defined]
    low = min((x for x in lows if not math.isnan(x)), default=nan)
    high = max((x for x in highs if not math.isnan(x)), default=nan)
    with np.errstate(invalid="ignore"):
        value = float(np.mean([v for v, _ in defined]))
    return SetSummary(region, metric, value, low, high, min(s.n for _, s in defined), len(defined))


def record_set_metrics(record: RunRecord | dict[str, Any]) -> list[tuple[str, str]]:
    """(region, metric) pairs of a record's set-level scores, in the task spec's order."""
    record = as_record(record)
    regions = record.task.spec.get("regions") or []
    metrics = record.task.spec.get("metrics") or []
    seen = [(r, m) for r, ms in record.set_scores.items() for m in ms]
    return sorted(seen, key=lambda rm: (regions.index(rm[0]) if rm[0] in regions else 99,
                                        metrics.index(rm[1]) if rm[1] in metrics else 99))


def as_record(record: RunRecord | dict[str, Any]) -> RunRecord:
    """A typed record (dicts, e.g. read with ``json``, are validated)."""
    return record if isinstance(record, RunRecord) else record_from_dict(record)


def case_values(record: RunRecord | dict[str, Any], region: str, metric: str) -> dict[str, float]:
    """case_id -> value for successfully scored cases with a finite value."""
    return as_record(record).case_values(region, metric)


def bootstrap_ci(
    values: Iterable[float], confidence: float = 0.95, n_boot: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (NaN when fewer than 2 values).

    Resamples ``default_rng(seed).integers(0, n, (n_boot, n))``, the same draws as
    ``scipy.stats.bootstrap(..., method="percentile", rng=seed)``. It under-covers at small n (about 93%
    at n = 20); the leaderboard shows :func:`studentized_ci` instead.
    """
    x = np.asarray(list(values), dtype=np.float64)
    if x.size < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1 - confidence) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def summarise(record: RunRecord | dict[str, Any], region: str, metric: str) -> Summary:
    """Mean, std, median and the leaderboard's 95% CI (:data:`CI_METHOD`) of one metric in one region."""
    return summarise_values(list(case_values(record, region, metric).values()), region, metric)


def record_regions_metrics(record: RunRecord | dict[str, Any]) -> list[tuple[str, str]]:
    """(region, metric) pairs present in a record, in the task spec's order."""
    record = as_record(record)
    spec = record.task.spec
    regions = spec.get("regions") or []
    metrics = spec.get("metrics") or []
    seen_set: set[tuple[str, str]] = set()
    seen: list[tuple[str, str]] = []
    for case in record.ok_cases().values():
        for region, values in case.scores.items():
            for metric in values:
                if (region, metric) not in seen_set:
                    seen_set.add((region, metric))
                    seen.append((region, metric))
    order = {
        (r, m): (regions.index(r) if r in regions else 99, metrics.index(m) if m in metrics else 99) for r, m in seen
    }
    return sorted(seen, key=lambda rm: order[rm])


# ============================================================================================ leaderboards
#: Directions of cmsbench 0.1 metric names (the part before the first ``_``), for records that do not
#: state their metrics' directions (schema 1); newer records carry them in ``scoring.metrics``.
HIGHER_IS_BETTER = frozenset({"psnr", "ssim", "msssim", "ms-ssim", "ncc", "pcc", "dice", "lpips_sim"})
LOWER_IS_BETTER = frozenset({"mae", "mse", "nmse", "rmse", "nrmse", "nmae", "lpips", "fid", "bias", "hd95"})

#: The interval every leaderboard output shows (see :func:`bootstrap_ci`).
CI_METHOD = "studentized"
CI_LEVEL = 0.95
N_BOOT = 10_000
N_BOOT_RANKS = 2_000
ALPHA = 0.05
CI_DESCRIPTION = (
    "studentised (bootstrap-t) 95% interval of the mean over cases, 10,000 case resamples, seed 0 "
    "(Student-t interval below 10 and above 2,000 cases); its coverage is checked by simulation (about 95% from "
    "n = 20 cases)"
)


def higher_is_better(metric: str, directions: dict[str, bool | None] | None = None) -> bool | None:
    """True when a larger value is better, False when smaller is, None if unknown.

    ``directions`` (a board's, from its records) wins; then the metric registry; then the 0.1 name table.
    An unknown metric is shown with its statistics but is never ranked, bolded or grouped.
    """
    if directions is not None and metric in directions:
        return directions[metric]
    from cmsbench.benchmark.metrics.registry import direction_of, is_registered

    if is_registered(metric):  # a registered direction of None means "not ranked"
        registered = direction_of(metric)
        return None if registered is None else registered == "higher"
    base = metric.lower().split("_")[0]
    if metric.lower() in HIGHER_IS_BETTER or base in HIGHER_IS_BETTER:
        return True
    if metric.lower() in LOWER_IS_BETTER or base in LOWER_IS_BETTER:
        return False
    return None


def _as_float(value: Any) -> float:
    """A stored score (float, None for NaN, "inf"/"-inf") as a float."""
    if value is None:
        return float("nan")
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def studentized_ci(
    values: Iterable[float], confidence: float = CI_LEVEL, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, float]:
    """Studentised (bootstrap-t) confidence interval of the mean.

    Resamples ``idx = default_rng(seed).integers(0, n, (n_boot, n))``; for each resample
    ``t* = (mean* - mean) / se*`` with ``se* = std*(ddof=1) / sqrt(n)``; the interval is
    ``[mean - q(1-a/2) se, mean - q(a/2) se]`` with linear-interpolated quantiles (``np.quantile``) and
    ``se = std(ddof=1) / sqrt(n)``. Resamples with ``se* = 0`` (all draws equal) are dropped. Unlike the
    percentile interval it carries the t-distribution's small-sample width, so 95% intervals cover about
    95% of the time from ~20 cases (the percentile interval covers ~93% at n = 20). NaN below 2 values;
    ``(mean, mean)`` when all values are equal.
    """
    x = np.asarray(list(values), dtype=np.float64)
    n = x.size
    if n < 2:
        return (float("nan"), float("nan"))
    mean = float(x.mean())
    se = float(x.std(ddof=1)) / math.sqrt(n)
    if se == 0.0:
        return (mean, mean)
    rng = np.random.default_rng(seed)
    t_stats = []
    chunk = max(1, min(n_boot, 20_000_000 // n))
    left = n_boot
    while left > 0:
        draw = x[rng.integers(0, n, size=(min(chunk, left), n))]
        left -= draw.shape[0]
        se_star = draw.std(axis=1, ddof=1) / math.sqrt(n)
        keep = se_star > 0
        t_stats.append((draw.mean(axis=1)[keep] - mean) / se_star[keep])
    t = np.concatenate(t_stats)
    if t.size == 0:
        return (mean, mean)
    alpha = (1 - confidence) / 2
    q_low, q_high = np.quantile(t, [alpha, 1 - alpha])
    return (mean - float(q_high) * se, mean - float(q_low) * se)


#: Below this many cases a bootstrap has too few distinct resamples (n = 2: every resample is the sample
#: or a constant); the studentised choice then falls back, visibly, to the Student-t interval.
MIN_BOOTSTRAP_N = 10
#: Above this many cases the studentised interval is the Student-t interval: the bootstrap-t's correction
#: for skewness shrinks like 1/n (below 0.1 % of the interval's width here, under its own Monte-Carlo
#: error with 10,000 resamples), while its cost grows like n; the table says which interval it shows.
MAX_BOOTSTRAP_N = 2000


def t_interval(values: Iterable[float], confidence: float = CI_LEVEL) -> tuple[float, float]:
    """Student-t interval of the mean: ``mean ± t(n-1) * std(ddof=1) / sqrt(n)``; NaN below 2 values."""
    from scipy.stats import t as student_t

    x = np.asarray(list(values), dtype=np.float64)
    if x.size < 2:
        return (float("nan"), float("nan"))
    half = float(student_t.ppf(0.5 + confidence / 2, x.size - 1)) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return (float(x.mean()) - half, float(x.mean()) + half)


def ci_method_for(n: int, method: str = CI_METHOD) -> str:
    """The interval actually used for ``n`` values: ``"studentized"`` becomes ``"t"`` below
    :data:`MIN_BOOTSTRAP_N` and above :data:`MAX_BOOTSTRAP_N`."""
    if method not in ("studentized", "percentile", "t"):
        raise UnknownNameError(f"unknown confidence interval method {method!r}; use 'studentized', 'percentile' or 't'")
    return "t" if method == "studentized" and not MIN_BOOTSTRAP_N <= n <= MAX_BOOTSTRAP_N else method


def confidence_interval(
    values: Iterable[float], method: str = CI_METHOD, confidence: float = CI_LEVEL, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, float]:
    """The leaderboard's interval of the mean: ``"studentized"`` (default; Student-t below
    :data:`MIN_BOOTSTRAP_N` values, see :func:`ci_method_for`), ``"percentile"`` or ``"t"``."""
    x = np.asarray(list(values), dtype=np.float64)
    used = ci_method_for(x.size, method)
    if used == "studentized":
        return studentized_ci(x, confidence, n_boot, seed)
    if used == "percentile":
        return bootstrap_ci(x, confidence, n_boot, seed)
    return t_interval(x, confidence)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and does not count as a test)."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    m = valid.size
    running = 0.0
    for rank, i in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return [float(v) for v in out]


def wilcoxon_p(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank test of paired values (scipy defaults); (statistic, p).

    All differences zero -> (0, 1); fewer than 2 pairs -> NaN.
    """
    from scipy.stats import wilcoxon

    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.size < 2:
        return (float("nan"), float("nan"))
    if np.all(x - y == 0):
        return (0.0, 1.0)
    result = wilcoxon(x, y)
    return (float(result.statistic), float(result.pvalue))


# ---------------------------------------------------------------------------------------- grouping
_canonical = canonical


@dataclass(frozen=True)
class BoardKey:
    """What must be equal for two records to be compared as equals."""

    task: str
    data_kind: str
    task_version: str
    parameters: str
    split_hash: str
    mode: str
    convention: str

    def differences(self, other: BoardKey) -> list[str]:
        """Human-readable reasons why this key differs from ``other`` (the main table's)."""
        out = []
        if self.data_kind != other.data_kind:
            out.append(f"{self.data_kind} data (main table: {other.data_kind} data)")
        if self.task_version != other.task_version:
            out.append(f"task version {self.task_version} (main table: {other.task_version})")
        if self.parameters != other.parameters:
            out.append(f"task parameters {self.parameters} (main table: {other.parameters})")
        if self.split_hash != other.split_hash:
            out.append(f"test split hash {self.split_hash} (main table: {other.split_hash})")
        if self.mode != other.mode:
            out.append(f"scoring mode {self.mode!r} (main table: {other.mode!r})")
        if self.convention != other.convention:
            mine, theirs = json.loads(self.convention), json.loads(other.convention)
            if isinstance(mine, dict) and isinstance(theirs, dict):
                keys = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
                out.append(
                    "metric convention differs in "
                    + "; ".join(
                        f"{k}: {_short_json(mine.get(k))} (main table: {_short_json(theirs.get(k))})" for k in keys
                    )
                )
            else:
                out.append(f"metric convention {_short_json(mine)} (main table: {_short_json(theirs)})")
        return out


def _short_json(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: Convention fields that describe one case rather than the run (the runner stores the last case's
#: convention); they are ignored when deciding whether two records are comparable.
CASE_DEPENDENT_CONVENTION_KEYS = frozenset({"suv"})


def _run_convention(convention: Any) -> Any:
    if isinstance(convention, dict):
        return {k: v for k, v in convention.items() if k not in CASE_DEPENDENT_CONVENTION_KEYS}
    return convention


def board_key(record: RunRecord | dict[str, Any]) -> BoardKey:
    """The comparability key of a record."""
    record = as_record(record)
    return BoardKey(
        task=record.task.name,
        data_kind=record.data.kind,
        task_version=record.task.version,
        parameters=_canonical(record.task.parameters),
        split_hash=record.split.test_hash,
        mode=record.scoring.mode,
        convention=_canonical(_run_convention(record.scoring.convention)),
    )


def _slug(text: str, extra: Any = None) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "x"
    if extra is None:
        return base
    return f"{base}-{hashlib.sha256(_canonical(extra).encode()).hexdigest()[:8]}"


@dataclass
class Entry:
    """One method configuration (name, version, options) on one board; one record per seed."""

    key: str
    name: str
    version: str
    options: dict[str, Any]
    card: dict[str, Any]
    label: str
    records: list[tuple[Path | None, RunRecord]]
    _values: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict, repr=False)

    @property
    def seeds(self) -> list[Any]:
        return [rec.seed for _, rec in self.records]

    def seed_values(self, region: str, metric: str) -> list[dict[str, float]]:
        """Per seed: case_id -> finite value."""
        return [rec.case_values(region, metric) for _, rec in self.records]

    def _table(self) -> dict[tuple[str, str], dict[str, float]]:
        """(region, metric) -> case -> value averaged over seeds (NaN dropped, +-inf kept), from the frame."""
        if not self._values and self.records:
            frame = records_frame(rec for _, rec in self.records)
            frame = frame[frame["value"].notna()]
            if len(frame):
                means = frame.groupby(["region", "metric", "case"], sort=False)["value"].mean()
                for (region, metric, case), value in means.items():
                    self._values.setdefault((region, metric), {})[case] = float(value)
            self._values.setdefault(("", ""), {})
        return self._values

    def raw_values(self, region: str, metric: str) -> dict[str, float]:
        """case_id -> value averaged over seeds, keeping +-inf (used for per-case ranks)."""
        return dict(self._table().get((region, metric), {}))

    def values(self, region: str, metric: str) -> dict[str, float]:
        """case_id -> finite value, averaged over the seeds that scored the case."""
        return {cid: v for cid, v in self._table().get((region, metric), {}).items() if math.isfinite(v)}

    def set_score(self, region: str, metric: str) -> SetSummary:
        """A set-level metric over the test set (:class:`SetSummary`), combined over seeds."""
        return set_summary([rec for _, rec in self.records], region, metric)

    def n_cases(self) -> int:
        return len({cid for _, rec in self.records for cid in rec.cases})

    def n_failed(self) -> int:
        """Cases that failed in at least one seed."""
        return len({cid for _, rec in self.records for cid, c in rec.cases.items() if c.status != "ok"})

    def predict_s_per_case(self) -> float:
        """Mean predict time per successful case (s), over seeds."""
        times = [float(c.timing["predict_s"]) for _, rec in self.records for c in rec.ok_cases().values()
                 if isinstance(c.timing.get("predict_s"), (int, float))]
        return float(np.mean(times)) if times else float("nan")

    def fit_s(self) -> float:
        """Mean fit time over seeds (s); NaN when every seed reused a cached fitted state."""
        times = [float(rec.timing["fit_s"]) for _, rec in self.records
                 if isinstance(rec.timing.get("fit_s"), (int, float)) and not rec.timing.get("fit_cached")]
        return float(np.mean(times)) if times else float("nan")

    def fit_cached(self) -> bool:
        return any(rec.timing.get("fit_cached") for _, rec in self.records)

    def memory_mb(self) -> dict[str, float]:
        """Peak memory in MB per kind (``host``, ``gpu``), the largest over seeds."""
        out: dict[str, float] = {}
        for _, rec in self.records:
            for key, mb in memory_mb(rec.memory or {}).items():
                out[key] = max(out.get(key, 0.0), mb)
        return out


def memory_mb(memory: dict[str, Any]) -> dict[str, float]:
    """A record's ``memory`` dict as ``{"host": MB, "gpu": MB}``, the largest value of each kind.

    Keys without a unit suffix are bytes (the runner's ``cpu_peak_rss``, ``gpu_peak_allocated``); keys
    ending in ``_kb``, ``_mb`` or ``_gb`` are in those units. Keys naming gpu/cuda count as GPU memory.
    """
    out: dict[str, float] = {}
    for key, value in memory.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            continue
        k = key.lower()
        if k.endswith(("_gb", "_gib")):
            scale = 1024.0
        elif k.endswith(("_mb", "_mib")):
            scale = 1.0
        elif k.endswith(("_kb", "_kib")):
            scale = 1 / 1024
        else:
            scale = 1 / 2**20
        kind = "gpu" if ("gpu" in k or "cuda" in k) else "host"
        out[kind] = max(out.get(kind, 0.0), float(value) * scale)
    return out


@dataclass(frozen=True)
class Comparison:
    """Paired comparison of two entries over the cases both scored (difference = a - b)."""

    a: str
    b: str
    n: int
    mean_diff: float
    ci_low: float
    ci_high: float
    statistic: float
    p: float
    p_holm: float
    significant: bool


@dataclass(frozen=True)
class RankInfo:
    """Ranks of one entry: rank-then-aggregate (mean per-case rank) and aggregate-then-rank."""

    mean_rank: float  # average per-case rank (BraTS style)
    rank_rta: float  # position by mean_rank (1 = best)
    rta_low: float  # 2.5% / 97.5% of that position over case resamples
    rta_high: float
    rank_atr: float  # position by the mean value
    atr_low: float
    atr_high: float


@dataclass
class MetricBoard:
    """Everything shown for one (region, metric) on one board."""

    region: str
    metric: str
    higher_is_better: bool | None
    stats: dict[str, Summary]
    comparisons: list[Comparison]
    ranks: dict[str, RankInfo]
    groups: dict[str, int]
    order: list[str]  # entry keys, best first (by mean; input order when the direction is unknown)
    n_union: int

    @property
    def best(self) -> str | None:
        if self.higher_is_better is None or not self.order:
            return None
        return self.order[0] if not math.isnan(self.stats[self.order[0]].mean) else None

    def comparison(self, a: str, b: str) -> Comparison | None:
        for c in self.comparisons:
            if (c.a, c.b) == (a, b):
                return c
            if (c.b, c.a) == (a, b):
                return Comparison(
                    a, b, c.n, -c.mean_diff, -c.ci_high, -c.ci_low, c.statistic, c.p, c.p_holm, c.significant
                )
        return None


def summarise_values(
    values: Sequence[float], region: str = "", metric: str = "", seed_sd: float = float("nan"), method: str = CI_METHOD
) -> Summary:
    """Mean, std (ddof=1), median and the leaderboard's 95% CI of finite values."""
    x = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        nan = float("nan")
        return Summary(region, metric, 0, nan, nan, nan, nan, nan, seed_sd, method)
    low, high = confidence_interval(x, method=method)
    method = ci_method_for(int(x.size), method)
    return Summary(
        region,
        metric,
        int(x.size),
        float(x.mean()),
        float(x.std(ddof=1)) if x.size > 1 else 0.0,
        float(np.median(x)),
        low,
        high,
        seed_sd,
        method,
    )


def _oriented(matrix: np.ndarray, higher: bool) -> np.ndarray:
    """Values oriented so that larger is better, NaN (missing) -> -inf (worst)."""
    m = matrix if higher else -matrix
    return np.where(np.isnan(m), -np.inf, m)


def _positions(score: np.ndarray) -> np.ndarray:
    """Rank positions along axis 0 (1 = largest score; ties averaged)."""
    from scipy.stats import rankdata

    return rankdata(-score, axis=0, method="average")


def compute_metric_board(
    entries: Sequence[Entry],
    region: str,
    metric: str,
    seed: int = 0,
    n_boot_ranks: int = N_BOOT_RANKS,
    alpha: float = ALPHA,
    directions: dict[str, bool | None] | None = None,
) -> MetricBoard:
    """Statistics, paired Wilcoxon tests (Holm), ranks with bootstrap intervals and significance groups."""
    from scipy.stats import rankdata

    higher = higher_is_better(metric, directions)
    keys = [e.key for e in entries]
    values = {e.key: e.values(region, metric) for e in entries}
    stats = {}
    for e in entries:
        seed_means = [float(np.mean(list(v.values()))) for v in e.seed_values(region, metric) if v]
        spread = float(np.std(seed_means, ddof=1)) if len(seed_means) > 1 else float("nan")
        stats[e.key] = summarise_values(list(values[e.key].values()), region, metric, spread)

    # paired comparisons over common cases
    pairs = []
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            common = sorted(set(values[a]) & set(values[b]))
            xa = np.array([values[a][c] for c in common])
            xb = np.array([values[b][c] for c in common])
            stat, p = wilcoxon_p(xa, xb)
            diff = xa - xb
            lo, hi = confidence_interval(diff) if diff.size else (float("nan"), float("nan"))
            pairs.append((a, b, len(common), float(diff.mean()) if diff.size else float("nan"), lo, hi, stat, p))
    adjusted = holm([p[-1] for p in pairs])
    comparisons = [
        Comparison(*p, p_holm=q, significant=bool(math.isfinite(q) and q < alpha))
        for p, q in zip(pairs, adjusted, strict=True)
    ]

    if higher is None:
        return MetricBoard(
            region, metric, None, stats, comparisons, {}, {}, keys, len(set().union(*values.values())) if values else 0
        )

    def sort_key(k: str) -> tuple[bool, float]:
        m = stats[k].mean
        return (math.isnan(m), -m if higher else m)

    order = sorted(keys, key=sort_key)

    # ranks: per case over the union of cases; a method without a value on a case gets the worst rank
    raw = {e.key: e.raw_values(region, metric) for e in entries}
    cases = sorted(set().union(*(set(v) for v in raw.values())))
    ranks: dict[str, RankInfo] = {}
    if cases:
        matrix = np.array([[raw[k].get(c, np.nan) for c in cases] for k in keys], dtype=np.float64)
        finite = np.where(np.isfinite(matrix), matrix, np.nan)
        per_case = _positions(_oriented(matrix, higher))  # (methods, cases)
        mean_rank = per_case.mean(axis=1)
        rta = rankdata(mean_rank, method="average")
        with np.errstate(all="ignore"):
            means = np.nanmean(finite, axis=1) if finite.size else np.full(len(keys), np.nan)
        atr = _positions(_oriented(means[:, None], higher))[:, 0]
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(cases), size=(n_boot_ranks, len(cases)))
        import warnings

        if len(cases) <= MAX_BOOTSTRAP_N:
            boot_rta = rankdata(per_case[:, idx].mean(axis=2), axis=0, method="average")  # (methods, B)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                boot_means = np.nanmean(finite[:, idx], axis=2)
        else:  # the same resamples as case counts: one matrix product instead of a (methods, B, n) gather
            n = len(cases)
            counts = np.bincount((idx + np.arange(n_boot_ranks)[:, None] * n).ravel(),
                                 minlength=n_boot_ranks * n).reshape(n_boot_ranks, n).astype(np.float64)
            boot_rta = rankdata(per_case @ counts.T / n, axis=0, method="average")
            ok = np.isfinite(finite)
            with np.errstate(invalid="ignore", divide="ignore"):
                boot_means = (np.where(ok, finite, 0.0) @ counts.T) / (ok.astype(np.float64) @ counts.T)
        boot_atr = _positions(_oriented(boot_means, higher))
        for i, k in enumerate(keys):
            r_lo, r_hi = np.quantile(boot_rta[i], [0.025, 0.975])
            a_lo, a_hi = np.quantile(boot_atr[i], [0.025, 0.975])
            ranks[k] = RankInfo(
                float(mean_rank[i]), float(rta[i]), float(r_lo), float(r_hi), float(atr[i]), float(a_lo), float(a_hi)
            )

    # significance groups: the best remaining method and every method not significantly different from it
    board = MetricBoard(region, metric, higher, stats, comparisons, ranks, {}, order, len(cases))
    groups: dict[str, int] = {}
    remaining = [k for k in order if stats[k].n > 0]
    group = 0
    while remaining:
        group += 1
        head = remaining[0]
        members = [head]
        for k in remaining[1:]:
            cmp = board.comparison(head, k)
            if cmp is None or not cmp.significant:
                members.append(k)
        for k in members:
            groups[k] = group
        remaining = [k for k in remaining if k not in members]
    board.groups = groups
    return board


@dataclass
class Board:
    """One table: the records of one task that can be compared as equals."""

    key: BoardKey
    entries: list[Entry]
    slug: str
    main: bool = True
    reason: str | None = None  # why this table is shown apart from the task's main table
    notes: list[str] = field(default_factory=list)
    #: ``--rank-by``: (region or None, metric) the table ranks by instead of the task's main metric
    rank_by: tuple[str | None, str] | None = None
    _cache: dict[tuple[str, str], MetricBoard] = field(default_factory=dict, repr=False)

    @property
    def task(self) -> str:
        return self.key.task

    @property
    def spec(self) -> dict[str, Any]:
        return self.entries[0].records[0][1].task.spec if self.entries else {}

    @property
    def convention(self) -> Any:
        return self.entries[0].records[0][1].scoring.convention if self.entries else None

    @property
    def directions(self) -> dict[str, bool | None]:
        """metric -> higher is better, as the board's records state it (schema 2 records)."""
        out: dict[str, bool | None] = {}
        for e in self.entries:
            for _, rec in e.records:
                for name, info in rec.scoring.metrics.items():
                    if name not in out:  # a recorded None means "not ranked"
                        out[name] = None if info.direction not in ("higher", "lower") else info.direction == "higher"
        return out

    def higher_is_better(self, metric: str) -> bool | None:
        return higher_is_better(metric, self.directions)

    def _ranked_pair(self) -> tuple[str, str] | None:
        """The (region, metric) of ``rank_by`` when the board scored it (region None: the task's main region
        if the metric is there, else the first region that has it)."""
        if self.rank_by is None:
            return None
        region, metric = self.rank_by
        pairs = self.regions_metrics()
        if region is not None:
            return (region, metric) if (region, metric) in pairs else None
        wanted = self.spec.get("main_region")
        if (wanted, metric) in pairs:
            return wanted, metric
        return next(((r, m) for r, m in pairs if m == metric), None)

    @property
    def main_region(self) -> str:
        """The ``rank_by`` region, else the task's main region if it was scored, else the first scored region."""
        ranked = self._ranked_pair()
        if ranked is not None:
            return ranked[0]
        scored = self.regions()
        wanted = self.spec.get("main_region") or (self.spec.get("regions") or [None])[0]
        return wanted if wanted in scored else scored[0]

    @property
    def main_metric(self) -> str:
        """The ``rank_by`` metric, else the task's main metric if it was scored in the main region, else the
        first one there."""
        ranked = self._ranked_pair()
        if ranked is not None:
            return ranked[1]
        scored = [m for r, m in self.regions_metrics() if r == self.main_region]
        wanted = self.spec.get("main_metric")
        return wanted if wanted in scored else scored[0]

    def set_rank_by(self, spec: str | None) -> None:
        """``--rank-by METRIC[@REGION]``; a board that did not score it keeps its main metric (with a note)."""
        if not spec:
            return
        metric, _, region = spec.partition("@")
        self.rank_by = (region or None, metric)
        self._cache.clear()
        if self._ranked_pair() is None:
            self.notes.append(f"--rank-by {spec}: not scored on this table; ranked by its main metric")
            self.rank_by = None

    def _distinct_pairs(self, of_record) -> list[tuple[str, str]]:
        """The (region, metric) pairs ``of_record`` finds in the board's records, first seen first."""
        pairs = (rm for e in self.entries for _, rec in e.records for rm in of_record(rec))
        return list(dict.fromkeys(pairs))

    def regions_metrics(self) -> list[tuple[str, str]]:
        return self._distinct_pairs(record_regions_metrics) or [("global", "psnr")]

    def regions(self) -> list[str]:
        return list(dict.fromkeys(r for r, _ in self.regions_metrics()))

    def metrics(self) -> list[str]:
        return list(dict.fromkeys(m for _, m in self.regions_metrics()))

    def metric(self, region: str, metric: str) -> MetricBoard:
        if (region, metric) not in self._cache:
            self._cache[(region, metric)] = compute_metric_board(self.entries, region, metric,
                                                                 directions=self.directions)
        return self._cache[(region, metric)]

    def set_metrics(self) -> list[tuple[str, str]]:
        """(region, metric) pairs of the set-level metrics the board's records hold (never per case, never in
        paired tests or ranks)."""
        return self._distinct_pairs(record_set_metrics)

    def set_order(self, region: str, metric: str) -> list[str]:
        """Entry keys sorted by a set-level metric's value, best first (NaN last; entry order when the
        direction is unknown). A point-estimate order only: no test says two values differ."""
        higher = self.higher_is_better(metric)
        values = {e.key: e.set_score(region, metric).value for e in self.entries}
        if higher is None:
            return list(values)
        return sorted(values, key=lambda k: (math.isnan(values[k]), -values[k] if higher else values[k]))

    def entry(self, key: str) -> Entry:
        for e in self.entries:
            if e.key == key:
                return e
        raise UnknownNameError(f"no method {key!r} on board {self.slug}")

    def title(self) -> str:
        return f"{self.task} v{self.key.task_version} ({self.key.data_kind} data, split {self.key.split_hash})"


_STATUS_RANK = {"complete": 2, "complete_with_failures": 1}


def _newest_first(item: tuple[Path | None, RunRecord]) -> tuple[bool, int, bool, str, float]:
    path, rec = item
    try:
        mtime = path.stat().st_mtime if path is not None else 0.0
    except OSError:
        mtime = 0.0
    # a run with downstream metrics holds every image metric too: kept over one without
    return (not rec.partial, _STATUS_RANK.get(rec.status, 0), rec.scoring.downstream is not None, rec.created, mtime)


def build_boards(records: Iterable[tuple[Path | None, RunRecord | dict[str, Any]]],
                 task: str | None = None) -> list[Board]:
    """Group records into boards: per task, per data kind, per (version, parameters, split, convention).

    Duplicate runs of one (task, method, options, seed) keep the newest complete full (not ``partial``)
    record; seeds of one
    (method, version, options) form one entry whose per-case values are averaged over seeds. Within a
    (task, data kind) the board with the most entries (then the newest) is the main one; the others are
    marked ``main=False`` with the reason. Phantom and real data are always separate boards.
    """
    groups: dict[BoardKey, list[tuple[Path | None, RunRecord]]] = {}
    for path, rec in records:
        rec = as_record(rec)
        key = board_key(rec)
        if task is not None and key.task != task:
            continue
        groups.setdefault(key, []).append((path, rec))
    boards: list[Board] = []
    for key, items in groups.items():
        notes: list[str] = []
        runs: dict[tuple[str, str, Any], list[tuple[Path | None, RunRecord]]] = {}
        for path, rec in items:
            runs.setdefault((rec.method.name, _canonical(rec.method.options), _canonical(rec.seed)), []).append(
                (path, rec))
        chosen = []
        for (name, _, seed), runs_of in runs.items():
            runs_of.sort(key=_newest_first, reverse=True)
            chosen.append(runs_of[0])
            if len(runs_of) > 1:
                notes.append(
                    f"{name} seed {seed}: kept the newest complete record of {len(runs_of)} "
                    f"({runs_of[0][0].name if runs_of[0][0] else 'in memory'})"
                )
        by_entry: dict[tuple[str, str, str], list[tuple[Path | None, RunRecord]]] = {}
        for path, rec in chosen:
            by_entry.setdefault((rec.method.name, rec.method.version, _canonical(rec.method.options)), []).append(
                (path, rec))
        names = [n for n, _, _ in by_entry]
        entries = []
        for (name, version, options), recs in sorted(by_entry.items()):
            recs.sort(key=lambda pr: _canonical(pr[1].seed))
            m = recs[0][1].method
            label = name
            if names.count(name) > 1:
                label = f"{name} v{version} {options}"
            entries.append(
                Entry(
                    key=_slug(name, [name, version, options]),
                    name=name,
                    version=version,
                    options=dict(m.options),
                    card=dict(m.card),
                    label=label,
                    records=recs,
                )
            )
        boards.append(Board(key, entries, slug=_slug(key.task, [key.__dict__]), notes=notes))

    by_task: dict[tuple[str, str], list[Board]] = {}
    for b in boards:
        by_task.setdefault((b.key.task, b.key.data_kind), []).append(b)
    ordered: list[Board] = []
    for task_name in sorted({t for t, _ in by_task}):
        kinds = sorted((k for t, k in by_task if t == task_name), key=lambda k: (k != "real", k))
        for kind in kinds:
            group = by_task[(task_name, kind)]
            newest = {id(b): max(r.created for e in b.entries for _, r in e.records) for b in group}
            group.sort(key=lambda b: (len(b.entries), newest[id(b)]), reverse=True)
            main = group[0]
            if kind == "phantom":
                main.reason = "phantom data: synthetic stand-in, never compared with real data"
            for other in group[1:]:
                other.main = False
                other.reason = "shown apart: " + "; ".join(other.key.differences(main.key))
                if kind == "phantom":
                    other.reason += " (phantom data)"
            ordered.extend(group)
    return ordered


def load_boards(*folders: str | Path, task: str | None = None) -> list[Board]:
    """Boards from every record below ``folders`` (files that are not records are skipped)."""
    return build_boards(load(*folders), task=task)


def load_result_boards(*folders: str | Path, task: str | None = None) -> tuple[list[Board], ResultSet]:
    """Boards and the loaded :class:`~cmsbench.results.ResultSet` (its ``skipped`` files with reasons)."""
    result_set = load(*folders)
    return build_boards(result_set, task=task), result_set


# ----------------------------------------------------------------------------------------- formatting
def decimals_for(summaries: Iterable[Summary]) -> int:
    """Decimals that show the smallest CI half-width with two significant digits (0..6)."""
    widths = [
        (s.ci_high - s.ci_low) / 2
        for s in summaries
        if math.isfinite(s.ci_high) and math.isfinite(s.ci_low) and s.ci_high > s.ci_low
    ]
    if not widths:
        means = [abs(s.mean) for s in summaries if math.isfinite(s.mean) and s.mean != 0]
        return 4 if not means else int(min(6, max(0, 3 - math.floor(math.log10(min(means))))))
    return int(min(6, max(0, 1 - math.floor(math.log10(min(widths))))))


def fmt(value: float, decimals: int) -> str:
    """A number as shown in every table ("n/a" for NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{decimals}f}"


def fmt_ci(s: Summary, decimals: int, style: str = "pm") -> str:
    """``mean ± half-width`` (style ``"pm"``) or ``mean [lo, hi]`` (``"interval"``)."""
    if s.n == 0:
        return "n/a"
    if not (math.isfinite(s.ci_low) and math.isfinite(s.ci_high)):
        return fmt(s.mean, decimals)
    if style == "interval":
        return f"{fmt(s.mean, decimals)} [{fmt(s.ci_low, decimals)}, {fmt(s.ci_high, decimals)}]"
    return f"{fmt(s.mean, decimals)} ± {fmt((s.ci_high - s.ci_low) / 2, decimals)}"


def fmt_rank_interval(low: float, high: float) -> str:
    return f"{low:g}–{high:g}"
