"""EK-FAC influence of training documents on LLM completions (see docs/engine-api.md)."""
