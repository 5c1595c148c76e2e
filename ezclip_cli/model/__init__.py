"""The model: the frozen open_clip backbone, EZ-CLIP (prompts, adapters, losses), checkpoint formats,
the reference importer, the exported bundle's format, the scorer, and loading a model by spec.

Imports stay lazy: importing this package does not import torch.
"""
