"""What a weighted eval metric is: a network loaded from a weights file, and how it scores clips."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Metric:
    """One metric of ``sweettok eval`` that needs a network's weights (they cannot be downloaded here).

    - ``setting``: the eval setting (and ``--flag``) naming the weights file, local or s3://;
    - ``load(path)``: the network from a local weights file (a wrong layout raises ValueError);
    - ``per_clip(net, real, fake)``: uint8 clips (b, c, t, h, w) -> one value per clip, averaged over clips; or
    - ``features(net, clips)``: feature rows of the clips (None when the clips do not apply), and the metric is
      the Frechet distance between the inputs' and the reconstructions' features, merged exactly across actors;
    - ``check(net, frames)``: a problem with this tokenizer's clip length, or None;
    - ``convention``: how the number is computed (written into eval.json); ``help``: the flag's help.
    """

    name: str
    setting: str
    help: str
    convention: str
    load: Callable[[str], Any]
    per_clip: Callable[[Any, Any, Any], Any] | None = None
    features: Callable[[Any, Any], Any] | None = None
    check: Callable[[Any, int | None], str | None] | None = None

    @property
    def frechet(self) -> bool:
        return self.features is not None
