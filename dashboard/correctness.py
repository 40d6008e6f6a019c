"""Did the model answer a query correctly? The one rule lives in the torch-free analysis layer
(precompute.analysis.correctness: the final answer parsed from a chain-of-thought completion, compared with the
reference; unknown without a reference), so the dashboard's badges and the analysis' correctness splits agree."""
from precompute.analysis.correctness import (  # noqa: F401  (re-exported for the dashboard)
    is_correct, model_answer, reference_answer, same_answer)
