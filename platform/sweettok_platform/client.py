"""A Python client for the ``sweettok serve`` endpoint: ``Client(url).encode(video) -> Tokens``,
``.decode(ids) -> Frames``, batched variants with bounded concurrency, typed errors, and retries.

Imports only numpy and requests (no Ray, no torch), so a training script or a notebook can use it anywhere.

- Every result names the tokenizer that made it (``Tokens.tokenizer``, ``Frames.tokenizer``: the bundle hash,
  or ``preset:<name>:seed<n>``). A batch whose answers come from more than one tokenizer (a rollout in the
  middle of it) raises ``TokenizerMismatch`` instead of returning mixed ids; so does decoding ``Tokens`` on a
  service that now runs another tokenizer.
- A refused request raises ``RequestRefused`` (or ``Unauthorized`` for 401) with the server's ``status`` and
  ``detail``. Only 503 answers and connection failures are retried (``retries`` times, exponential backoff
  from ``backoff_s``, at least the server's ``Retry-After``); then ``ServiceUnavailable``.
"""

from __future__ import annotations

import io
import json
import mimetypes
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar, Union

import numpy as np
import requests

TOKENIZER_HEADER = "X-SweetTok-Tokenizer"  # set by the endpoint on every encode/decode answer
VideoInput = Union[str, Path, bytes, np.ndarray]  # a local file, an s3:// URI, file bytes, or uint8 frames
IdsInput = Union["Tokens", np.ndarray, Sequence[int], Sequence[Sequence[int]]]
T = TypeVar("T")
R = TypeVar("R")


class SweetTokError(Exception):
    """Any failure of a call to the endpoint."""


class RequestRefused(SweetTokError):
    """The endpoint answered 4xx (or a 5xx other than 503): ``status`` and the server's ``detail``."""

    def __init__(self, status: int, detail: str, url: str) -> None:
        super().__init__(f"{status} from {url}: {detail}")
        self.status, self.detail, self.url = status, detail, url


class Unauthorized(RequestRefused):
    """401: the API key is missing or wrong."""


class ServiceUnavailable(SweetTokError):
    """503 answers or connection failures persisted through every retry."""

    def __init__(self, message: str, status: int | None, detail: str, url: str) -> None:
        super().__init__(message)
        self.status, self.detail, self.url = status, detail, url


class TokenizerMismatch(SweetTokError):
    """Results of one batch came from different tokenizers, or ids are decoded by another tokenizer."""

    def __init__(self, message: str, tokenizers: list[str]) -> None:
        super().__init__(message)
        self.tokenizers = tokenizers


@dataclass
class Tokens:
    """Ids of one input: ``ids`` int64 (clips, N_s [+ N_t]) in the canonical layout, one row per clip."""

    ids: np.ndarray
    tokenizer: str
    kind: str  # "video" or "image"
    layout: dict[str, int]  # {"spatial": N_s, "temporal": N_t (0 for images)}
    starts: list[int] = field(default_factory=list)  # first frame of each clip in the source
    fps: float = 0.0
    words: list[list[str]] | None = None  # one word per id, when asked for


@dataclass
class Frames:
    """Decoded pixels: uint8 ``frames`` (clips, t, h, w, c) and the tokenizer that decoded them."""

    frames: np.ndarray
    tokenizer: str


def same_tokenizer(results: Sequence[Tokens | Frames]) -> str:
    """The one tokenizer of ``results``; ``TokenizerMismatch`` when they name more than one."""
    names = sorted({r.tokenizer for r in results})
    if len(names) > 1:
        raise TokenizerMismatch(f"one batch got answers from {len(names)} tokenizers ({', '.join(names)}): the "
                                "service changed its tokenizer during the batch; run the batch again", names)
    return names[0] if names else ""


class Client:
    """The endpoint at ``url`` (e.g. ``http://127.0.0.1:8000``).

    ``timeout`` (seconds) bounds each HTTP request; ``retries`` is how often a 503 or a connection failure is
    retried (waiting ``backoff_s * 2**attempt``, at least ``Retry-After``); ``concurrency`` is how many requests
    the batched calls keep in flight."""

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 120.0, retries: int = 4,
                 backoff_s: float = 0.5, concurrency: int = 4) -> None:
        if retries < 0 or concurrency < 1:
            raise ValueError("retries must be >= 0 and concurrency >= 1")
        self.url = url.rstrip("/")
        self.timeout, self.retries, self.backoff_s, self.concurrency = timeout, retries, backoff_s, concurrency
        self._headers = {"X-API-Key": api_key} if api_key else {}
        self._local = threading.local()  # one requests.Session per thread (sessions are not thread-safe)
        self._sessions: list[requests.Session] = []
        self._pool: ThreadPoolExecutor | None = None  # the batched calls' threads, kept (with their sessions)
        self._lock = threading.Lock()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections this client opened (in every thread that used it)."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        for session in sessions:
            session.close()
        self._local = threading.local()

    # ---- HTTP ----------------------------------------------------------------------------------------
    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            with self._lock:
                self._sessions.append(self._local.session)
        return self._local.session

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One call with the retry policy; the response of a 2xx, typed errors otherwise."""
        url = f"{self.url}{path}"
        headers = {**self._headers, **kwargs.pop("headers", {})}
        for attempt in range(self.retries + 1):
            wait = self.backoff_s * 2**attempt
            try:
                response = self._session().request(method, url, headers=headers, timeout=self.timeout, **kwargs)
            except requests.ConnectionError as e:
                status, detail = None, f"connection failed: {str(e).splitlines()[0][:200]}"
            else:
                if response.status_code < 400:
                    return response
                status, detail = response.status_code, _detail(response)
                if status != 503:
                    error = Unauthorized if status == 401 else RequestRefused
                    raise error(status, detail, url)
                wait = max(wait, _retry_after(response))
            if attempt < self.retries:
                time.sleep(wait)
        what = f"{status} {detail}" if status else detail
        raise ServiceUnavailable(f"{url}: {what} (after {self.retries + 1} attempts)", status, detail, url)

    # ---- service -------------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """The tokenizer served: hash, preset, layout, codebook sizes, clip geometry (``GET /v1/info``)."""
        return self._request("GET", "/v1/info").json()

    def health(self) -> bool:
        """Whether the service answers ``/healthz`` with its model ready (no retries)."""
        try:
            return self._session().get(f"{self.url}/healthz", timeout=self.timeout).status_code == 200
        except requests.RequestException:
            return False

    # ---- one input -----------------------------------------------------------------------------------
    def encode(self, video: VideoInput, *, words: bool = False, policy: str = "center", stride: int | None = None,
               resize: str = "squash", seed: int = 0, content_type: str | None = None) -> Tokens:
        """A video or image -> its ``Tokens``: a local path (type from its suffix), an ``s3://`` URI the
        service may read, uint8 frames ``(t, h, w, 3)`` (sent as .npy: no video decoding on the service), or
        file bytes with their ``content_type`` (e.g. ``video/mp4``).

        Clip options as ``sweettok encode``: ``policy`` center | random | windows (+ ``stride``), ``resize``
        squash | crop; ``words`` also returns one word per id."""
        params: dict[str, Any] = {"policy": policy, "resize": resize, "seed": seed, "words": str(words).lower()}
        if stride is not None:
            params["stride"] = stride
        if isinstance(video, str) and video.startswith("s3://"):
            response = self._request("POST", "/v1/encode", json={"uri": video, **params, "words": words})
        else:
            data, kind = _body(video, content_type)
            response = self._request("POST", "/v1/encode", data=data, params=params, headers={"Content-Type": kind})
        record = response.json()
        clips = record["clips"]
        return Tokens(ids=np.asarray([c["ids"] for c in clips], dtype=np.int64), tokenizer=record["tokenizer"],
                      kind=record["kind"], layout=record["layout"], starts=[c["start"] for c in clips],
                      fps=float(clips[0]["fps"]) if clips else 0.0,
                      words=[c["words"] for c in clips] if words else None)

    def decode(self, ids: IdsInput) -> Frames:
        """Ids (``Tokens``, one row ``(n,)`` or rows ``(clips, n)``) -> uint8 ``Frames`` (clips, t, h, w, c).

        ``Tokens`` from another tokenizer than the one now served raise ``TokenizerMismatch``."""
        rows = np.asarray(ids.ids if isinstance(ids, Tokens) else ids)
        if rows.ndim == 1:
            rows = rows[None]
        if rows.ndim != 2 or not np.issubdtype(rows.dtype, np.integer):
            raise ValueError(f"ids must be integers (n,) or (clips, n), got {rows.dtype} of shape {rows.shape}")
        response = self._request("POST", "/v1/decode", json={"ids": rows.tolist(), "format": "npy"})
        frames = np.load(io.BytesIO(response.content), allow_pickle=False)
        tokenizer = response.headers.get(TOKENIZER_HEADER, "")
        if isinstance(ids, Tokens) and ids.tokenizer != tokenizer:
            raise TokenizerMismatch(f"ids made by {ids.tokenizer} were decoded by {tokenizer}: the service runs "
                                    "another tokenizer now; encode again", [ids.tokenizer, tokenizer])
        return Frames(frames=frames, tokenizer=tokenizer)

    # ---- batches -------------------------------------------------------------------------------------
    def encode_many(self, videos: Sequence[VideoInput], **options: Any) -> list[Tokens]:
        """``encode`` of every input, ``concurrency`` requests at a time, in input order. The first failure
        is raised; answers from more than one tokenizer raise ``TokenizerMismatch``."""
        results = self._map(lambda v: self.encode(v, **options), videos)
        same_tokenizer(results)
        return results

    def decode_many(self, ids: Sequence[IdsInput]) -> list[Frames]:
        """``decode`` of every item, ``concurrency`` requests at a time, in input order; one tokenizer for all
        (``TokenizerMismatch`` otherwise)."""
        results = self._map(self.decode, ids)
        same_tokenizer(results)
        return results

    def _map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if len(items) <= 1 or self.concurrency == 1:
            return [fn(item) for item in items]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="sweettok-client")
            pool = self._pool
        futures = [pool.submit(fn, item) for item in items]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _body(video: VideoInput, content_type: str | None) -> tuple[bytes, str]:
    """Request body and Content-Type of an upload: uint8 frames as .npy, a file by its suffix."""
    if isinstance(video, np.ndarray):
        if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 (t, h, w, 3), got {video.dtype} of shape {video.shape}")
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(video), allow_pickle=False)
        return buf.getvalue(), "application/x-npy"
    if isinstance(video, bytes):
        if not content_type:
            raise ValueError("file bytes need their content_type (e.g. 'video/mp4', 'image/png')")
        return video, content_type
    path = Path(video)
    content_type = content_type or ("application/x-npy" if path.suffix.lower() == ".npy"
                                    else mimetypes.guess_type(path.name)[0])
    if content_type is None:
        raise ValueError(f"{path}: unknown file type (send .mp4/.webm/.avi/.mov, .png/.jpg, or .npy frames)")
    return path.read_bytes(), content_type


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason
    return str(body.get("detail", body)) if isinstance(body, dict) else json.dumps(body)[:300]


def _retry_after(response: requests.Response) -> float:
    try:
        return float(response.headers.get("Retry-After", 0))
    except ValueError:
        return 0.0
