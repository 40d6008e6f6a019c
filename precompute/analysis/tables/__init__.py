"""One module per table (or a few closely related tables); every module here is imported by
precompute.analysis.registry.discover() and registers its tables, findings and row statistics."""
