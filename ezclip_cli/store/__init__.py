"""The embedding store: its format, appending to it, `ezclip embed`, re-labelling and search."""
