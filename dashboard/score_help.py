"""What the numbers on the pages mean: one place for the explanations shown next to scores.

The definitions are in docs/normalisations.md (formulas and sources); these texts say the same in a few lines."""
from __future__ import annotations

import math

from precompute.analysis.ranking import MIN_NATS

DOC = "docs/normalisations.md"
# The low-information rule as the pages state it, from the threshold the analysis applies (ranking.per_nat).
LOW_INFORMATION = f"completion under {MIN_NATS:g} nats, i.e. p(completion | prompt) > {math.exp(-MIN_NATS):.2f}"

SCORE_KINDS = {"raw": "raw", "per nat": "per_nat", "gradient-normalised": "normalized"}

MEANING = {
    "raw": (
        "**raw** — s(q, d) = Σ_layers ⟨P(G_q), G_d⟩: the query completion's gradient, preconditioned by the EK-FAC "
        "curvature P, against the document's loss gradient. It is the first-order change in log p(completion | "
        "prompt), in nats, per unit step size of a preconditioned gradient step on the document's summed loss. "
        "Positive (red) = training on the document makes the completion more likely; negative (teal) = less "
        "likely. Compare magnitudes **within one query**: across queries they differ by orders of magnitude."
    ),
    "per nat": (
        "**per nat** — raw ÷ I(q), the completion's information −log p(completion | prompt) in nats (`nats`): "
        "influence per nat of completion information, so that queries can be compared. Same ranking as raw within "
        f"a query. Low-information queries ({LOW_INFORMATION}) have no per-nat values (NaN): too certain to divide by."
    ),
    "gradient-normalised": (
        "**gradient-normalised** — raw ÷ ‖G_d‖₂, the plain (not preconditioned) norm of the document's loss "
        "gradient over the tracked parameters: removes the advantage of documents whose gradients are merely large "
        "(long or high-loss documents). For one query it ranks like the cosine between P(G_q) and G_d; values are "
        "not bounded by 1 and not comparable across queries. Whether this is Ruis et al.'s exact normalisation is "
        "not known (see the definitions)."
    ),
}

TOKEN_SCORES = (
    "Token shading: each token's share of the document's raw score (g_tᵀ P(G_q) a_t summed over layers; the "
    "shares sum to the raw score). Red = that token's share is positive, teal = negative; the colour bar gives "
    "the scale of this card (its largest |share|)."
)


def explanation(kind_label: str) -> str:
    """The meaning of one score kind, with a pointer to the definitions."""
    return f"{MEANING[kind_label]} Definitions and sources: `{DOC}`."


def all_explanations() -> str:
    return "\n\n".join(MEANING.values()) + f"\n\nDefinitions and sources: `{DOC}`."
