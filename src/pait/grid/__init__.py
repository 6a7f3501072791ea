"""The grid: a config expanded into units (plan), their cached stages, results rows, validation, landscapes."""
