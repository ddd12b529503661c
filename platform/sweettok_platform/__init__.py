"""The Ray layer around SweetTokenizer: training, bulk tokenization, serving and the ``sweettok`` CLI."""
