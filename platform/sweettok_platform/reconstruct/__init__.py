"""``sweettok reconstruct``: every video/image of some patterns through the tokenizer (encode + decode) into an
output folder at the same relative paths. ``reconstruct(ReconstructConfig(...)) -> ReconstructResult``."""

from sweettok_platform.reconstruct.files import ReconstructConfig, ReconstructResult, list_tasks, stitch_starts
from sweettok_platform.reconstruct.run import reconstruct

__all__ = ["ReconstructConfig", "ReconstructResult", "list_tasks", "reconstruct", "stitch_starts"]
