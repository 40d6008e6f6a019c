"""The statistics under every finding: bootstrap over queries, label-permutation p-values, hypergeometric chance
baselines, and the finding record with its verdict. numpy + scipy only.

Resampling unit: the query. Statistics are written as functions of per-group query weights: `weights[g]` has
shape [..., Q] and counts how often each query (score row) is drawn into group g. A bootstrap resample draws each
group's queries with replacement (groups are strata: tasks are never mixed); a permutation shuffles queries
between groups (the task labels). Pairs of queries are re-formed from the drawn queries (a query drawn twice
never pairs with itself), so pair statistics are not resampled as if pairs were independent.
"""
from __future__ import annotations

import math
import warnings
import zlib
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import special, stats

ALPHA = 0.05
N_RESAMPLES = 2000
DEFAULT_SEED = 0
MAX_EXACT_SUPPORT = 400_000     # hypergeometric sums with a longer support use a normal approximation
P_FLOOR = 1e-12                 # smaller hypergeometric tails are below the FFT convolution's precision
VERDICTS = ("holds", "not supported", "reversed")


def finding_seed(seed: int, name: str) -> np.random.Generator:
    """A generator for one named statistic: independent of every other name, fixed for a given seed."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])


def query_weights(samples, n_queries: int) -> list[np.ndarray]:
    """Index arrays [..., n_g] (queries drawn into group g) -> count arrays [..., n_queries]."""
    weights = []
    for sample in samples:
        sample = np.asarray(sample).astype(np.int64)
        lead = sample.shape[:-1]
        flat = sample.reshape(-1, sample.shape[-1])
        offsets = (np.arange(len(flat), dtype=np.int64) * n_queries)[:, None]
        counts = np.bincount((flat + offsets).ravel(), minlength=len(flat) * n_queries)
        weights.append(counts.reshape(*lead, n_queries).astype(np.float64))
    return weights


def _on_weights(statistic, n_queries):
    def on_samples(*samples, axis=-1):
        return statistic(*query_weights(samples, n_queries))
    return on_samples


def bootstrap_interval(groups, statistic, n_queries: int, rng: np.random.Generator,
                       n_resamples: int = N_RESAMPLES, alpha: float = ALPHA, max_undefined: float = 0.1):
    """Expanded percentile interval of `statistic(*weights)` when every group's queries are drawn with replacement
    (scipy.stats.bootstrap, one sample per group).

    Plain percentile intervals are too narrow for small samples (a mean of 6 queries covers ~88%, not 95%); the
    expanded percentile interval (Hesterberg 2015, "What teachers should know about the bootstrap") reads the
    percentiles at alpha' = 2 Φ(−sqrt(n/(n−1)) t_{1−alpha/2, n−1}) with n the smallest group. Resamples where
    the statistic is undefined (NaN: e.g. every draw the same query, so no pair) are dropped; when more than
    `max_undefined` of them are, the interval is NaN. The statistic may return one value or a vector ([V, ...]
    with the resamples last); the interval has its shape."""
    low, high, _ = bootstrap_test(groups, statistic, n_queries, rng, n_resamples, alpha, max_undefined)
    return low, high


def bootstrap_test(groups, statistic, n_queries: int, rng: np.random.Generator, n_resamples: int = N_RESAMPLES,
                   alpha: float = ALPHA, max_undefined: float = 0.1, null_value: float | None = None):
    """bootstrap_interval's (low, high) plus, when `null_value` is given, the interval's p-value for it
    (interval_p_value: the smallest alpha at which the expanded interval excludes the null); else p is NaN."""
    groups = [np.asarray(group, dtype=np.int64) for group in groups]
    point = np.asarray(statistic(*query_weights(groups, n_queries)), dtype=np.float64)
    if any(len(group) < 2 for group in groups):
        return np.full(point.shape, np.nan), np.full(point.shape, np.nan), math.nan
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.bootstrap(groups, _on_weights(statistic, n_queries), n_resamples=n_resamples,
                                 vectorized=True, paired=False, method="percentile", rng=rng,
                                 batch=max(1, min(n_resamples, 2_000_000 // max(n_queries * len(groups), 1))))
    distribution = np.asarray(result.bootstrap_distribution, dtype=np.float64)
    smallest = min(len(g) for g in groups)
    low, high = percentile_interval(distribution, expanded_alpha(alpha, smallest), max_undefined)
    p_value = math.nan if null_value is None else interval_p_value(distribution, null_value, smallest, max_undefined)
    return low, high, p_value


def interval_p_value(distribution, null_value: float, n: int | None = None, max_undefined: float = 0.1) -> float:
    """Two-sided p-value of `null_value` read off a bootstrap distribution, matched to the interval the verdict
    uses: the smallest alpha at which the (expanded, for group size n; plain when n is None) percentile interval
    excludes the null. With f the share of resamples on the null's far side (the smaller tail, ties half), the
    plain interval excludes the null iff f < alpha/2, so p = 2f; the expanded one reads its percentiles at
    alpha' = 2 Φ(−c t_{1−alpha/2, n−1}), c = sqrt(n/(n−1)), so p solves alpha'(p) = 2f:
    p = 2 · T_{n−1}.sf(−Φ⁻¹(f) / c). NaN when more than `max_undefined` of the resamples are undefined.

    A finite number B of resamples cannot resolve a far tail (f = 0 would give p = 0): when no resample lies
    beyond the null, f is the normal tail Φ(−|mean − null| / sd) of the distribution's own mean and sd, capped
    at 1/(2B) so that p stays below every alpha whose interval the resamples resolve."""
    values = np.asarray(distribution, dtype=np.float64).ravel()
    finite = values[np.isfinite(values)]
    if len(values) == 0 or len(finite) < (1 - max_undefined) * len(values):
        return math.nan
    below = np.mean(finite < null_value) + 0.5 * np.mean(finite == null_value)
    tail = float(min(below, 1.0 - below))
    if tail == 0:
        spread = float(np.std(finite))
        distance = abs(float(np.mean(finite)) - null_value)
        tail = min(float(stats.norm.sf(distance / spread)) if spread > 0 else 0.0, 0.5 / len(finite))
    if n is None:
        return float(min(1.0, 2 * tail))
    if tail <= 0:
        return 0.0
    n = max(int(n), 2)
    t = -stats.norm.ppf(tail) / math.sqrt(n / (n - 1))
    return float(min(1.0, 2 * stats.t.sf(t, n - 1)))


def expanded_alpha(alpha: float, n: int) -> float:
    """The tail probability at which the expanded percentile interval reads the bootstrap distribution."""
    n = max(int(n), 2)
    return float(2 * stats.norm.sf(math.sqrt(n / (n - 1)) * stats.t.ppf(1 - alpha / 2, n - 1)))


def percentile_interval(distribution: np.ndarray, alpha: float = ALPHA, max_undefined: float = 0.1):
    """(low, high) percentiles of a bootstrap distribution along its last axis, NaN-aware."""
    finite = np.isfinite(distribution)
    defined = finite.mean(axis=-1)
    masked = np.where(finite, distribution, np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low = np.nanpercentile(masked, 100 * alpha / 2, axis=-1)
        high = np.nanpercentile(masked, 100 * (1 - alpha / 2), axis=-1)
    bad = defined < 1 - max_undefined
    return np.where(bad, np.nan, low), np.where(bad, np.nan, high)


def permutation_p_value(groups, statistic, n_queries: int, rng: np.random.Generator,
                        n_resamples: int = N_RESAMPLES) -> float:
    """Two-sided p-value of `statistic(*weights)` under shuffled group labels (scipy.stats.permutation_test,
    permutation_type="independent": queries move between groups, group sizes stay)."""
    groups = [np.asarray(group, dtype=np.int64) for group in groups]
    if any(len(group) == 0 for group in groups) or len(groups) < 2:
        return math.nan
    observed = float(statistic(*query_weights(groups, n_queries)))
    if not np.isfinite(observed):
        return math.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        result = stats.permutation_test(groups, _on_weights(statistic, n_queries), vectorized=True,
                                        permutation_type="independent", n_resamples=n_resamples,
                                        alternative="two-sided", rng=rng)
    null = np.asarray(result.null_distribution, dtype=np.float64)
    if np.isfinite(null).all():
        return float(result.pvalue)
    # undefined permutations (NaN) are dropped; otherwise scipy's two-sided rule for random permutations
    null = null[np.isfinite(null)]
    tolerance = abs(observed) * 1e-14
    greater = (np.sum(null >= observed - tolerance) + 1) / (len(null) + 1)
    less = (np.sum(null <= observed + tolerance) + 1) / (len(null) + 1)
    return float(min(1.0, 2 * min(greater, less)))


# ---------------------------------------------------------------- chance baselines (hypergeometric)

def expected_hits(draws, successes, population) -> np.ndarray:
    """Mean of Hypergeom(population, successes, draws): matching documents among `draws` random ones."""
    return np.asarray(draws, dtype=np.float64) * np.asarray(successes, dtype=np.float64) / float(population)


def hypergeometric_pmf(population: int, successes: int, draws: int) -> np.ndarray:
    """pmf of Hypergeom(population, successes, draws) over 0..min(draws, successes), from log binomials
    (the same numbers as scipy.stats.hypergeom.pmf, vectorised for long supports)."""
    x = np.arange(0, min(draws, successes) + 1, dtype=np.float64)

    def log_choose(n, k):
        return special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_pmf = log_choose(successes, x) + log_choose(population - successes, draws - x) - \
            log_choose(population, draws)
    return np.where(draws - x <= population - successes, np.exp(log_pmf), 0.0)


def hypergeometric_sum_pmf(draws, successes, population: int) -> np.ndarray | None:
    """Exact pmf of a sum of independent Hypergeom(population, successes_i, draws_i) (index = total count),
    by FFT convolution; None when the support is longer than MAX_EXACT_SUPPORT."""
    pairs = list(zip((int(d) for d in draws), (int(s) for s in successes)))
    length = sum(min(d, s) for d, s in pairs) + 1
    if length > MAX_EXACT_SUPPORT:
        return None
    size = 1 << max(1, (length - 1).bit_length())
    spectrum = np.ones(size // 2 + 1, dtype=np.complex128)
    for (d, s), count in zip(*np.unique(np.asarray(pairs, dtype=np.int64).reshape(-1, 2), axis=0,
                                          return_counts=True)):
        spectrum *= np.fft.rfft(hypergeometric_pmf(population, s, d), size) ** count
    pmf = np.clip(np.fft.irfft(spectrum, size)[:length], 0.0, None)
    return pmf / pmf.sum()


def _sum_moments(draws, successes, population: int) -> tuple[float, float]:
    d = np.asarray(draws, dtype=np.float64)
    share = np.asarray(successes, dtype=np.float64) / population
    mean = float(np.sum(d * share))
    var = float(np.sum(d * share * (1 - share) * (population - d) / max(population - 1, 1)))
    return mean, var


def hypergeometric_sum_sf(observed: float, draws, successes, population: int) -> float:
    """P(sum ≥ observed) for independent hypergeometric counts (exact, or normal with continuity correction);
    exact tails below P_FLOOR are returned as P_FLOOR (the convolution does not resolve them)."""
    pmf = hypergeometric_sum_pmf(draws, successes, population)
    if pmf is not None:
        start = int(max(0, math.ceil(observed - 1e-9)))
        if start >= len(pmf):
            return 0.0
        return float(min(1.0, max(P_FLOOR, pmf[start:].sum())))
    mean, var = _sum_moments(draws, successes, population)
    if var <= 0:
        return float(observed <= mean)
    return float(stats.norm.sf((observed - 0.5 - mean) / math.sqrt(var)))


def hypergeometric_sum_two_sided(observed: float, draws, successes, population: int) -> float:
    """Two-sided p-value of an observed sum of independent hypergeometric counts: 2 × the smaller tail."""
    upper = hypergeometric_sum_sf(observed, draws, successes, population)
    lower = 1.0 - hypergeometric_sum_sf(observed + 1, draws, successes, population)
    return float(min(1.0, 2 * min(upper, lower)))


def hypergeometric_sum_interval(draws, successes, population: int, alpha: float = ALPHA) -> tuple[float, float]:
    """Central (1 − alpha) range of the sum of independent hypergeometric counts (the chance band)."""
    pmf = hypergeometric_sum_pmf(draws, successes, population)
    if pmf is not None:
        cdf = np.cumsum(pmf)
        low = int(np.searchsorted(cdf, alpha / 2 - 1e-12))
        high = int(np.searchsorted(cdf, 1 - alpha / 2 - 1e-12))
        return float(low), float(min(high, len(pmf) - 1))
    mean, var = _sum_moments(draws, successes, population)
    z = stats.norm.ppf(1 - alpha / 2)
    return max(0.0, mean - z * math.sqrt(var)), mean + z * math.sqrt(var)


# ---------------------------------------------------------------- the finding record

PERMUTATION = "task labels permuted"
def verdict(ci_low: float, ci_high: float, null_value: float, paper_direction: str) -> str:
    """"holds" when the interval excludes no-effect on the paper's side, "reversed" when on the other side."""
    if not (np.isfinite(ci_low) and np.isfinite(ci_high)):
        return "not supported"
    above, below = ci_low > null_value, ci_high < null_value
    if paper_direction == "greater":
        return "holds" if above else "reversed" if below else "not supported"
    return "holds" if below else "reversed" if above else "not supported"


def as_float(value) -> float:
    return math.nan if value is None else float(value)


def number_text(value) -> str:
    """A number to 3 significant digits for sentences; "undefined" for None or NaN."""
    return "undefined" if value is None or not np.isfinite(value) else f"{value:.3g}"


WIDTH_ZERO = "width 0: every resample gave this value"


def interval_note(low, high) -> str:
    """' (width 0: every resample gave this value)' after an interval whose ends are equal (e.g. a share of 100% in
    every resample), else ''."""
    return f" ({WIDTH_ZERO})" if low is not None and np.isfinite(low) and low == high else ""


def _p_text(value) -> str:
    return f"< {P_FLOOR:.0e}" if value <= P_FLOOR else f"= {number_text(value)}"


def finding_text(record: dict) -> str:
    """A record as sentences: the claim, the measured effect with its interval, the verdict with the p-value its
    interval stands for, the family-wise adjusted verdicts when set, and the record's other p-value with what it
    tests."""
    effect = as_float(record.get("effect"))
    unit = "×" if record.get("measure") == "ratio" and np.isfinite(effect) else ""
    low, high = as_float(record.get("ci_low")), as_float(record.get("ci_high"))
    text = (f"{record['claim']} Measured: {record['effect_label']} = {number_text(effect)}{unit} (95% CI "
            f"{number_text(low)} to {number_text(high)}{interval_note(low, high)}; "
            f"{record.get('n')} queries). Verdict: {record['verdict']}")
    interval_p = as_float(record.get("interval_p"))
    text += f" (p {_p_text(interval_p)} for no effect, from the bootstrap)." if np.isfinite(interval_p) else "."
    if record.get("adjusted_verdict") is not None:
        holm_p = as_float(record.get("holm_p"))
        text += f" After Holm over the run's {record['family_size']} findings: {record['adjusted_verdict']}"
        text += f" (adjusted p {_p_text(holm_p)})" if np.isfinite(holm_p) else ""
        if record.get("primary"):
            text += (f"; among the {record['primary_family_size']} headline claims: "
                     f"{record['primary_adjusted_verdict']}")
        text += "."
    p_value = as_float(record.get("p_value"))
    if np.isfinite(p_value):
        method = record.get("p_value_method")
        if method == PERMUTATION:
            text += (f" Label-permutation p {_p_text(p_value)}: it tests whether the compared groups' queries are "
                     "exchangeable at all, not this contrast's size.")
        else:
            text += f" Chance p {_p_text(p_value)} ({method}): it tests the top documents against random ones."
    notes = [str(note) for note in record.get("notes") or []]
    return text + (" Notes: " + "; ".join(notes) + "." if notes else "")


@dataclass
class Finding:
    name: str                  # stable identifier, e.g. "correlation.same_task_vs_factual"
    claim: str                 # the paper's claim in one sentence
    effect_label: str          # what the effect is, e.g. "difference in mean Pearson r"
    paper_direction: str       # "greater" or "less": the effect vs null_value if the claim holds
    measure: str               # "difference" (null 0) or "ratio" (null 1)
    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    p_value_method: str
    n: int                     # queries that enter the effect
    parts: dict[str, float] = field(default_factory=dict)   # the group values the effect compares
    notes: list[str] = field(default_factory=list)
    interval_p: float = math.nan   # p of no effect matching the interval (statistics.interval_p_value)

    @property
    def null_value(self) -> float:
        return 0.0 if self.measure == "difference" else 1.0

    @property
    def verdict(self) -> str:
        return verdict(self.ci_low, self.ci_high, self.null_value, self.paper_direction)

    def text(self) -> str:
        return finding_text(self.record())

    def record(self) -> dict:
        record = asdict(self)
        record.update(null_value=self.null_value, verdict=self.verdict, confidence=1 - ALPHA)
        for key in ("effect", "ci_low", "ci_high", "p_value", "interval_p"):
            record[key] = json_number(record[key])
        record["parts"] = {key: json_number(value) for key, value in self.parts.items()}
        record["text"] = finding_text(record)
        return record


def json_number(value) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)
