"""Engines that run tagging past one machine: Ray Data stages (ray_data.py), `tag --engine ray` (ray_run.py).

They reuse tag's sampling, preprocessing, model and rows; Ray is imported only when one is used.
"""
