"""Text: tokenizer and vocabulary, raw corpora, caption windows, skip-gram pairs and training."""
