"""Video in: find files, sample frame times, decode them (PyAV, decord), preprocess pixels, training transforms.

Nothing here imports torch at import time.
"""
