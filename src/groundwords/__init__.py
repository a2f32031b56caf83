"""groundwords: visually grounded word embeddings as one reproducible pipeline.

Layers, lowest first (a module imports only from its own layer or lower ones; tests/test_layout.py):

- ``cli``, ``files``, ``config``: the user-facing error and CLI runner; atomic files, TSV, HDF5; the config schema.
- ``data``: the embedded default, the manifest, fetching, images, encoding, PCA, planted-signal data.
- ``text``: tokenizer and vocabulary, raw corpora, CBOW windows of captions, skip-gram pairs.
- ``grounding``: images attached to words, per-word image features.
- ``models``: the ``nn.Module`` of each method (leaves: no training loops).
- ``training``: the one training loop and the outputs every training stage writes.
- ``evaluation``: word similarity, similarity sets, statistics, image-word matching, neighbours.
- ``studies.wield``, ``studies.iesg``, ``studies.pixie``: each paper's stages, tables and figures;
  ``studies.claims``: the claims table across them.

Every stage is a module with a ``python -m groundwords.<package>.<module>`` command line.
"""

__version__ = "0.1.0"
