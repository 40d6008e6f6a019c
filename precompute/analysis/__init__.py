"""The paper's analyses (Ruis et al.) on a run directory's scores: torch-free (numpy, pandas, scipy, pyarrow).

- registry:   tables, findings and per-query statistics, each registered once (tables/ holds one module each)
- context:    what every table receives (inputs, rankings from one pass over the rows, Pearson matrix, matches)
- statistics: bootstrap over queries, permutation p-values, hypergeometric chance baselines, finding records
- ranking:    top/bottom-k columns and scores per nat (one guard for low-information completions)
- occurrence: does a text contain an answer / step (the rule the dashboard's badges use too); search: corpus-wide
- runner:     analyze_run(run) -> tables + findings, written to RUN/analysis/
- run_difference: two runs' correlation findings on their shared queries, with paired bootstrap intervals
- docs:       renders the analysis section of docs/run-directory.md from the registry
"""
from precompute.analysis.context import FACTUAL_TASK, TOP_K, AnalysisContext, is_control_task, is_reasoning_task
from precompute.analysis.inputs import AnalysisInputs, load_inputs
from precompute.analysis.registry import registered_findings, registered_tables
from precompute.analysis.runner import analyze, analyze_run, write_tables

TABLE_NAMES = tuple(spec.name for spec in registered_tables())

__all__ = ["FACTUAL_TASK", "TABLE_NAMES", "TOP_K", "AnalysisContext", "AnalysisInputs", "analyze", "analyze_run",
           "is_control_task", "is_reasoning_task", "load_inputs", "registered_findings", "registered_tables",
           "write_tables"]
