"""What the numbers on the pages mean: one place for the explanations shown next to scores.

The definitions are in docs/normalisations.md (formulas and sources); these texts say the same in a few lines."""
from __future__ import annotations

DOC = "docs/normalisations.md"

SCORE_KINDS = {"raw": "raw", "per nat": "per_nat", "gradient-normalised": "normalized"}

MEANING = {
    "raw": (
        "**raw** — influence of the document on the query's completion: ∇log p(completion)ᵀ (Ĝ + λI)⁻¹ "
        "∇(−loss of the document), summed over the tracked layers, with Ĝ the (EK-FAC) curvature fitted on the "
        "corpus. To first order it is how much the completion's log-probability (nats) rises per unit of extra "
        "training weight on the document. Positive (red) = the document makes the completion more likely. "
        "Magnitudes compare documents **within one query**; across queries they differ by orders of magnitude."
    ),
    "per nat": (
        "**per nat** — raw ÷ the completion's loss (−log p(completion | prompt), nats): influence per nat of "
        "information in the completion, so that queries with long or surprising completions can be compared. "
        "Same ranking as raw within a query."
    ),
    "gradient-normalised": (
        "**gradient-normalised** — raw ÷ ‖∇ loss of the document‖₂ (plain, not preconditioned, over the tracked "
        "parameters): removes the advantage of documents whose gradients are merely large (long or high-loss "
        "documents). Ranks documents differently from raw; the unit is nats per unit gradient norm."
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
