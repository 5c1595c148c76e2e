"""Label sets, prompt text and descriptions; benchmark datasets, list files and the published splits."""
