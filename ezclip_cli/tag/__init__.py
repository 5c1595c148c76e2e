"""Tagging: what to tag (plan, shards), decoding workers, predictors, scoring into results, writers,
resume, torchrun parts and merging.
"""
