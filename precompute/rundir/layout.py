"""What a run directory holds: file names, statuses and format versions (docs/run-directory.md describes each)."""
from __future__ import annotations

FORMAT_VERSION = 1
CHUNK_FORMAT = 2          # 2: chunks carry each document's n_tokens and truncated flag next to its scores

MANIFEST = "manifest.json"
LOCK = ".lock"            # held (flock) by the one process writing the run; never removed
QUERIES = "queries.jsonl"
DOCUMENTS = "documents.parquet"
SCORES = "scores.npy"
LAYER_SCORES = "layer_scores.npy"
LAYERS = "layers.json"
GRAD_NORMS = "doc_grad_norms.npy"
NORMALIZED_SCORES = "normalized_scores.npy"
TOKEN_SCORES = "token_scores.parquet"
FACTORS_DIR = "factors"
FACTOR_TENSORS = "factors.safetensors"
FACTOR_META = "meta.json"
FACTOR_SHARD = "factors-{shard:05d}-of-{shards:05d}.safetensors"   # fit --module-shards K > 1: one file per shard
CHUNKS_DIR = "chunks"
ANALYSIS_DIR = "analysis"
FINDINGS = "findings.json"
LABELS = "labels.json"         # the researcher's document labels (written by the dashboard); never a score file
LABELS_LOCK = "labels.lock"    # flock held while labels.json is read, changed and replaced
QUERY_SETS = "query_sets.json"        # named query filters saved on the Queries page (dashboard); never a score file
QUERY_SETS_LOCK = "query_sets.lock"   # flock held while query_sets.json is read, changed and replaced
VALIDATION = "validation.parquet"           # analysis/: tail-patch effects per query and ranking method
COUNTERFACTUAL = "counterfactual.parquet"   # analysis/: PBRF responses against every method's prediction
VALIDATION_STORE = "validation_chunks"      # validate's resumable work (one Parquet file per set)
VALIDATION_LR = "lr.json"                   # validation_chunks/: the calibrated learning rate
COUNTERFACTUAL_STORE = "counterfactual"     # counterfactual's PBRF responses, when no --responses store is given
RESPONSES = "responses.json"                # a response store's solved sets
RESPONSES_KEY = "key.json"                  # what the responses are valid for (model, damping, options)
RESPONSES_CALIBRATION = "calibration.json"  # the store's probe of epsilon
PUBLISHED_RANKS = "ranks.npy"                          # imported runs: int32 [Q, D] 0-based rank by raw influence
PUBLISHED_RANKS_NORMALIZED = "ranks_normalized.npy"    # the same by normalised influence

# RUN/index/ (`index`, or `score --index`): compressed document gradients for `ask`
INDEX_DIR = "index"
INDEX_MANIFEST = "manifest.json"
INDEX_VECTORS = "vectors.npy"
INDEX_KEYS = "keys.npy"
INDEX_COMPRESSOR = "compressor.safetensors"
INDEX_KEYS_PROJECTION = "keys.safetensors"
INDEX_SEARCH = "search.faiss"
INDEX_CHUNKS = "chunks"

# status values, in pipeline order ("fitted": factors written by `fit`, nothing scored yet)
STATUSES = ("fitting", "fitted", "scoring", "token_scores", "analyzing", "complete", "failed")
COMPLETE = "complete"

# every file a complete run holds (factors only for runs made with a model, see RunDir.missing_files)
SCORE_FILES = (QUERIES, DOCUMENTS, SCORES, LAYER_SCORES, LAYERS, GRAD_NORMS, NORMALIZED_SCORES, TOKEN_SCORES)
FACTOR_FILES = (f"{FACTORS_DIR}/{FACTOR_TENSORS}", f"{FACTORS_DIR}/{FACTOR_META}")   # sharded: meta.json's "files"

# documents.parquet: these columns always; every other column is document metadata kept from the corpus
DOCUMENT_COLUMNS = ("id", "source", "text", "n_tokens", "truncated")
TOKEN_COLUMNS = ("query_id", "doc_id", "side", "rank", "token_index", "token", "start", "end", "score")
