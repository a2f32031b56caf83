"""Data: the embedded default, the manifest, fetching, images, encoding, PCA, planted data."""
