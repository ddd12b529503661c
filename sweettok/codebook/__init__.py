"""The language codebook (paper §3.2.3): part-of-speech vocabulary, frozen LLM embeddings, GCN projector.

Build one with ``build_codebook`` (or ``sweettok codebook build``), point a config at it with
``language_config``, and the model quantizes with ``LanguageQuantizer``. Importing this package does not
import transformers (only building does).
"""

from sweettok.codebook.build import CodebookInfo, build_codebook
from sweettok.codebook.embeddings import default_model_dir
from sweettok.codebook.files import Codebook, read_codebook
from sweettok.codebook.quantizer import LanguageQuantizer, codebook_sizes, language_config
from sweettok.codebook.stats import codebook_stats

__all__ = [
    "Codebook",
    "CodebookInfo",
    "LanguageQuantizer",
    "build_codebook",
    "codebook_sizes",
    "codebook_stats",
    "default_model_dir",
    "language_config",
    "read_codebook",
]
