"""groundwords: visually grounded word embeddings as one reproducible pipeline.

Stages are importable modules with a ``python -m groundwords.<stage>`` CLI:
manifest, fetch, encode, pca, vocab, train, evaluate, tables.
"""

__version__ = "0.1.0"
