"""Where named models come from: the model index, sources (URLs, Google Drive, the hub), downloads into
the cache, and the offline switches checked before any network wait.
"""
