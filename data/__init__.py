"""The embedded demo world: corpus generator, demo model training and query sets."""
