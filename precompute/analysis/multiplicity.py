"""Family-wise adjustment of a run's findings: Holm's step-down method over each finding's interval p, once over
all the run's findings and once within the primary family of the paper's headline claims. Works on finding
records (dicts), whichever producer made them, so findings.json and every refresh of it are adjusted alike."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from precompute.analysis.statistics import ALPHA, as_float, finding_text, json_number

# The paper's headline claims, one record each: the primary family of the multiplicity adjustment.
PRIMARY_FINDINGS = ("correlation.reasoning_vs_factual", "occurrence.answer", "magnitude.information_adjusted")
MULTIPLICITY = ("Holm's step-down adjustment of each finding's bootstrap p (the p its interval stands for), over all "
                "the run's findings and, separately, within the primary family of the paper's headline claims")


def holm_adjusted(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN p-values are left out of the family and stay NaN):
    sorted ascending, p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j))."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(len(p), np.nan)
    known = np.flatnonzero(np.isfinite(p))
    order = known[np.argsort(p[known], kind="stable")]
    m = len(order)
    running = 0.0
    for position, index in enumerate(order):
        running = max(running, min(1.0, (m - position) * p[index]))
        adjusted[index] = running
    return adjusted


def adjusted_verdict(unadjusted: str, adjusted_p, alpha: float = ALPHA) -> str:
    """The unadjusted verdict when its family-wise adjusted p is below alpha, else "not supported"."""
    if unadjusted == "not supported" or adjusted_p is None or not np.isfinite(adjusted_p) or adjusted_p >= alpha:
        return "not supported"
    return unadjusted


def adjust_for_multiplicity(records: list[dict], alpha: float = ALPHA) -> list[dict]:
    """Holm's step-down adjustment of each record's `interval_p` (the p-value its verdict's interval stands for),
    once over all the run's records (`holm_p`, `adjusted_verdict`) and once within the primary family of the
    paper's headline claims (PRIMARY_FINDINGS: `primary_holm_p`, `primary_adjusted_verdict`; null for other
    records). Records without an interval p (undefined interval) count as not supported and stay out of the
    family; a record from a producer that sets no `interval_p` gets p_from_interval. Returns new records with the
    fields set and `text` rewritten."""
    records = [dict(record) for record in records]
    for record in records:
        if record.get("interval_p") is None:
            record["interval_p"] = json_number(p_from_interval(record))
    interval_p = [as_float(record.get("interval_p")) for record in records]
    primary = [record.get("name") in PRIMARY_FINDINGS for record in records]
    everything = holm_adjusted(interval_p)
    among_primary = holm_adjusted([p if chosen else math.nan for p, chosen in zip(interval_p, primary)])
    family_size = int(np.isfinite(interval_p).sum())
    primary_size = int(np.isfinite([p for p, chosen in zip(interval_p, primary) if chosen]).sum())
    for record, chosen, p_all, p_primary in zip(records, primary, everything, among_primary):
        record.update(primary=chosen, family_size=family_size, holm_p=json_number(p_all),
                      adjusted_verdict=adjusted_verdict(record.get("verdict"), p_all, alpha),
                      primary_family_size=primary_size if chosen else None,
                      primary_holm_p=json_number(p_primary) if chosen else None,
                      primary_adjusted_verdict=adjusted_verdict(record.get("verdict"), p_primary, alpha)
                      if chosen else None)
        record["text"] = finding_text(record)
    return records


def p_from_interval(record: dict, alpha: float = ALPHA) -> float:
    """A record's interval p when its producer gives none: a normal approximation read off the interval itself
    (Altman & Bland 2011, "How to obtain the P value from a confidence interval"), with the standard error from
    the half of the interval that faces the null (ratios on the log scale), so p < alpha exactly when the
    interval excludes the null."""
    effect, low, high = (as_float(record.get(key)) for key in ("effect", "ci_low", "ci_high"))
    null = 1.0 if record.get("measure") == "ratio" else 0.0
    if record.get("measure") == "ratio":
        if not (effect > 0 and low > 0 and high > 0):
            return math.nan
        effect, low, high, null = math.log(effect), math.log(low), math.log(high), 0.0
    if not all(np.isfinite(v) for v in (effect, low, high)):
        return math.nan
    half = (effect - low) if effect >= null else (high - effect)
    if half <= 0:
        return 1.0 if effect == null else 0.0
    z = abs(effect - null) / (half / stats.norm.ppf(1 - alpha / 2))
    return float(2 * stats.norm.sf(z))
