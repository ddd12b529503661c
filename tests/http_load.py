"""HTTP clients that keep posting one clip to the endpoint's ``/v1/encode`` until stopped, every answer kept:
the load under which the Serve tests autoscale, roll out, and lose replicas or nodes."""

from __future__ import annotations

import io
import threading
import time
from typing import NamedTuple

import numpy as np
import requests

HEADER = "X-SweetTok-Tokenizer"  # the tokenizer (bundle hash) that answered


def npy_clip(video: str, frames: int = 5, size: int = 32) -> bytes:
    """The first ``frames``x``size``x``size`` clip of a real video as ``.npy`` bytes: the request body, decoded
    once here, so no media decoding sits on the request path (the model is what is under load)."""
    from sweettok_platform.core.media import ClipSpec, read_clips

    clip = read_clips(video, ClipSpec(frames=frames, height=size, width=size))[0].frames
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(clip))
    return buf.getvalue()


class Answer(NamedTuple):
    client: int
    began: float  # time.monotonic() when the request was sent
    status: int  # 0: no HTTP answer (a hang or a dropped connection)
    tokenizer: str
    detail: str  # the error body or exception, "" when answered


class Load:
    """``clients`` threads posting ``clip`` (``.npy`` bytes), ``pause_s`` between a client's requests."""

    def __init__(self, url: str, clip: bytes, clients: int, *, timeout_s: float = 90, pause_s: float = 0.0) -> None:
        self.url, self.clip, self.timeout_s, self.pause_s = url, clip, timeout_s, pause_s
        self.stop_event, self.lock = threading.Event(), threading.Lock()
        self.answers: list[Answer] = []
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)]

    def _client(self, i: int) -> None:
        session = requests.Session()
        while not self.stop_event.is_set():
            began = time.monotonic()
            try:
                r = session.post(f"{self.url}/v1/encode", data=self.clip, timeout=self.timeout_s,
                                 headers={"Content-Type": "application/x-npy"})
                answer = Answer(i, began, r.status_code, r.headers.get(HEADER, ""), "" if r.ok else r.text[:300])
            except requests.RequestException as e:  # a hang or a dropped connection: a failure
                answer = Answer(i, began, 0, "", repr(e)[:300])
            with self.lock:
                self.answers.append(answer)
            if self.pause_s:
                time.sleep(self.pause_s)

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=self.timeout_s + 30)
        assert not any(t.is_alive() for t in self.threads), "a client hung"

    def failures(self) -> list[Answer]:
        return [a for a in self.answers if a.status != 200]


def model_replicas(url: str) -> int:
    """Running model replicas as the endpoint's ``/v1/stats`` reports them; -1 while it cannot answer."""
    try:
        return requests.get(f"{url}/v1/stats", timeout=30).json()["replicas"].get("TokenizerModel", 0)
    except (requests.RequestException, ValueError, KeyError):
        return -1
