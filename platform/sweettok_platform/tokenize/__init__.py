"""Bulk tokenization: a dataset -> a Parquet token corpus with Ray Data (``sweettok tokenize``)."""
