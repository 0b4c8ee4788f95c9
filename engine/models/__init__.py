"""Models to run: the catalog, downloads from the hub, the local library and what to recommend."""
