"""The endpoint's deployments: a FastAPI ingress (``Ingress``) in front of the batching model deployment.

Routes: ``POST /v1/encode``, ``POST /v1/decode``, ``GET /v1/info``, ``GET /v1/stats``, ``GET /healthz``;
the OpenAPI schema is at ``/openapi.json`` (docs at ``/docs``); the app object, request bodies and error
mapping are in ``serve.api``. ``build_app(args)`` is the application builder ``serve deploy`` imports;
``serve.lifecycle`` starts and stops it on a cluster.
"""

# no `from __future__ import annotations`: FastAPI must see the real Annotated[...] types through Serve
import asyncio
import contextlib
import hmac
import io
import json
import os
import time
from typing import Annotated, Any

import numpy as np
from fastapi import Query, Request
from fastapi.responses import JSONResponse, Response
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.handle import DeploymentHandle

from sweettok_platform.core.media import ClipSpec, encode_media
from sweettok_platform.serve import schemas
from sweettok_platform.serve.api import (
    CONTROL_HEADROOM, DECODE_BODY, ENCODE_BODY, ERRORS, MEDIA_TYPES, ApiKey, error_cause, off_loop, parse_json, api,
)
from sweettok_platform.serve.config import ServeConfig
from sweettok_platform.serve.inputs import Clips, decode_npy, suffix_for
from sweettok_platform.serve.limits import RequestError, check_ids, read_body
from sweettok_platform.serve.model import TokenizerModel, clips_in
from sweettok_platform.serve.sandbox import DecoderPool
from sweettok_platform.serve.uris import fetch_uri

Answer = tuple[np.ndarray, dict[str, Any]]  # a model result and the tag of the replica that made it
# every encode/decode response names the tokenizer that produced it (bundle hash, or preset:<name>:seed<n>)
TOKENIZER_HEADER = "X-SweetTok-Tokenizer"
RETRY_S = 30.0  # how long a request is retried while old replicas drain or a lost one restarts


def replica_counts(app: str) -> dict[str, int]:
    """Running replicas of each deployment of ``app`` (Serve's controller), e.g. {"TokenizerModel": 2}."""
    status = serve.status().applications.get(app)
    if status is None:
        return {}
    return {name: sum(n for state, n in d.replica_states.items() if str(getattr(state, "value", state)) == "RUNNING")
            for name, d in status.deployments.items()}


@serve.deployment(name="Ingress")
@serve.ingress(api)
class Ingress:
    """Parses and checks requests, decodes media in a sandbox, and calls the model deployment.

    With batching on, concurrent requests of one kind are gathered here too (``@serve.batch``) and sent as
    one call, so a batch costs one Ray hop; the model deployment batches again across ingress replicas.
    """

    def __init__(self, model: DeploymentHandle, config: dict[str, Any]) -> None:
        self.config = ServeConfig.from_dict(config)
        self.limits = self.config.limits
        self.model = model
        self.key = self.config.api_key
        if self.config.api_key_env:
            self.key = os.environ.get(self.config.api_key_env) or None
            if not self.key:
                raise RuntimeError(f"api_key_env is {self.config.api_key_env!r} but that variable is empty here")
        self.decoders = DecoderPool(self.config.decode_workers, memory_bytes=self.limits.decoder_memory_bytes)
        self._active = 0  # encode/decode requests in this replica (the request pool, limits.max_requests)
        for method in (self._encode_video, self._encode_image, self._decode_video, self._decode_image):
            method.set_max_batch_size(self.config.max_batch_size)
            method.set_batch_wait_timeout_s(self.config.batch_wait_timeout_s)
        self._info: dict[str, Any] | None = None
        # the newest deploy revision a model replica has answered with; a replica of a new deploy starts at
        # that deploy's revision (Serve replaces the ingress on a rollout too, and a client whose last answer came
        # from the new bundle through the old ingress must not get the old bundle through this one)
        self._newest = self.config.revision

    def __del__(self) -> None:
        if hasattr(self, "decoders"):
            self.decoders.close()

    def _auth(self, key: str | None) -> None:
        if self.key is not None and not (key and hmac.compare_digest(key.encode(), self.key.encode())):
            raise RequestError(401, "missing or wrong X-API-Key header")

    @contextlib.contextmanager
    def _request_slot(self):
        """A place in the request pool, or 503 at once: slow clients cannot queue up the replica."""
        if self._active >= self.limits.max_requests:
            raise RequestError(503, f"busy: {self._active} requests in progress on this replica; retry shortly")
        self._active += 1
        try:
            yield
        finally:
            self._active -= 1

    async def _body(self, request: Request, limit: int) -> bytes:
        """The request body, under the size limit and the slow-upload deadline (408)."""
        return await read_body(request.stream(), request.headers.get("content-length"), limit,
                               timeout_s=self.limits.body_timeout_s, min_rate=self.limits.min_body_rate,
                               max_s=self.limits.max_body_seconds)

    async def _model_info(self) -> dict[str, Any]:
        """The model's info, read again once a newer deploy has answered (a rollout)."""
        if self._info is None or self._info["revision"] < self._newest:
            self._info = await self.model.info.remote()
        return self._info

    async def _remote(self, op: str, x: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """The model's answer and the tag (tokenizer, revision) of the replica that gave it.

        During a rollout old and new model replicas both serve for a moment; once a new revision has
        answered here, an old replica's answer is not used: the call is repeated (the old replica is
        draining) so a client never sees the old bundle again after the new one. A replica that dies with
        the call in flight is also retried (Serve routes it to a live or restarted replica); past
        ``RETRY_S`` the client gets a 503 saying why."""
        deadline = time.monotonic() + RETRY_S
        while True:
            try:
                out, tag = await getattr(self.model, op).remote(x)
            except ValueError as e:  # ClipError raised in the model replica
                raise RequestError(422, error_cause(e)) from None
            except RayActorError as e:  # the replica died (or was stopped) with the call in flight
                if time.monotonic() > deadline:
                    raise RequestError(503, f"model replica lost ({type(e).__name__}); retry shortly") from None
                await asyncio.sleep(0.2)
                continue
            if tag["revision"] >= self._newest:
                self._newest = tag["revision"]  # a newer deploy: _model_info reads it again
                return out, tag
            if time.monotonic() > deadline:
                raise RequestError(503, "only replicas of a replaced deployment answered (rollout in progress)")
            await asyncio.sleep(0.05)

    async def _call(self, op: str, x: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """One request's clips (encode) or ids (decode) through the model, batched with concurrent ones."""
        if not self.config.batching or len(x) > self.config.max_batch_size:
            return await self._remote(op, x)
        spatial = (await self._model_info())["layout"]["spatial"]
        image = x.shape[1] == 1 if op == "encode" else x.shape[1] == spatial
        result = await getattr(self, f"_{op}_{'image' if image else 'video'}")(x)
        if isinstance(result, RequestError):
            raise result
        return result

    async def _gather(self, op: str, items: list[np.ndarray]) -> list[Answer | RequestError]:
        """Concurrent requests of one kind -> one model call (one Ray hop instead of one per request)."""
        try:
            out, tag = await self._remote(op, np.concatenate(items))
        except RequestError:  # some item is bad: answer each alone so only that one fails
            answers: list[Answer | RequestError] = []
            for x in items:
                try:
                    answers.append(await self._remote(op, x))
                except RequestError as e:
                    answers.append(e)
            return answers
        return [(part, tag) for part in np.split(out, np.cumsum([len(x) for x in items])[:-1])]

    @serve.batch(max_batch_size=16, batch_size_fn=clips_in, max_concurrent_batches=2)
    async def _encode_video(self, items: list[np.ndarray]) -> list[Answer | RequestError]:
        return await self._gather("encode", items)

    @serve.batch(max_batch_size=16, batch_size_fn=clips_in, max_concurrent_batches=2)
    async def _encode_image(self, items: list[np.ndarray]) -> list[Answer | RequestError]:
        return await self._gather("encode", items)

    @serve.batch(max_batch_size=16, batch_size_fn=clips_in, max_concurrent_batches=2)
    async def _decode_video(self, items: list[np.ndarray]) -> list[Answer | RequestError]:
        return await self._gather("decode", items)

    @serve.batch(max_batch_size=16, batch_size_fn=clips_in, max_concurrent_batches=2)
    async def _decode_image(self, items: list[np.ndarray]) -> list[Answer | RequestError]:
        return await self._gather("decode", items)

    @api.get("/healthz", summary="liveness and model readiness")
    async def healthz(self) -> dict[str, str]:
        try:
            info = await asyncio.wait_for(self._model_info(), timeout=10)
        except Exception as e:  # noqa: BLE001 - report, do not crash
            return JSONResponse({"status": "unavailable", "detail": error_cause(e)}, status_code=503)
        return {"status": "ok", "tokenizer": info["tokenizer"]}

    @api.get("/v1/info", response_model=schemas.InfoResponse, responses=ERRORS, summary="the tokenizer served")
    async def info(self, x_api_key: ApiKey = None) -> dict[str, Any]:
        self._auth(x_api_key)
        return await self._model_info()

    @api.get("/v1/stats", summary="running replicas per deployment, and model calls and clips per operation "
             "of the model replica that answers")
    async def stats(self, x_api_key: ApiKey = None) -> dict[str, Any]:
        self._auth(x_api_key)
        counts = await self.model.stats.remote()
        return {**counts, "replicas": await asyncio.to_thread(replica_counts, self.config.name)}

    @api.post("/v1/encode", response_model=schemas.EncodeResponse, responses=ERRORS, openapi_extra=ENCODE_BODY,
              summary="a video or image -> ids in the canonical layout, per clip (and words)")
    async def encode(
        self,
        request: Request,
        policy: Annotated[schemas.ClipPolicy, Query(description="which clips to take from a video")] = "center",
        stride: Annotated[int | None, Query(ge=1, description="frames between window starts (windows)")] = None,
        resize: Annotated[schemas.ResizePolicy, Query(description="squash, or short-side resize + crop")] = "squash",
        seed: Annotated[int, Query(description="seed of policy 'random'")] = 0,
        words: Annotated[bool, Query(description="also return the word of every token")] = False,
        x_api_key: ApiKey = None,
    ) -> Response:
        self._auth(x_api_key)
        with self._request_slot():
            return await self._encode(request, schemas.EncodeOptions(
                policy=policy, stride=stride, resize=resize, seed=seed, words=words))

    async def _encode(self, request: Request, options: schemas.EncodeOptions) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        is_json = content_type == "application/json"
        raw = not is_json and content_type != "multipart/form-data"
        suffix = suffix_for(content_type) if raw else ""  # 415 before the body is read
        data = await self._body(request, self.limits.max_json_bytes if is_json else self.limits.max_body_bytes)
        if not data:
            raise RequestError(400, "empty request body: send a video, an image, .npy frames or a JSON {\"uri\"}")
        if is_json:
            body = await off_loop(parse_json, schemas.EncodeURIRequest, data, size=len(data))
            options = schemas.EncodeOptions(**body.model_dump(exclude={"uri"}))
            data = await asyncio.to_thread(fetch_uri, body.uri, self.limits.max_body_bytes,
                                           self.config.allowed_uri_prefixes)
            suffix = suffix_for(None, body.uri)
        elif not raw:
            data, suffix = await self._form_file(request, data)
        info = await self._model_info()
        clip = info["clip"]
        spec = ClipSpec(frames=clip["frames"], height=clip["height"], width=clip["width"],
                        policy=options.policy, stride=options.stride, resize=options.resize, seed=options.seed)
        if suffix == ".npy":
            clips: Clips = await off_loop(decode_npy, data, spec, self.limits, size=len(data))
        else:
            clips = await self.decoders.decode(data, suffix, spec, self.limits, timeout=self.limits.decode_timeout_s)
        ids, tag = await self._call("encode", clips.frames)
        words = await self.model.words.remote(ids) if options.words else [None] * len(ids)
        record = {
            "tokenizer": tag["tokenizer"],
            "kind": clips.kind,
            "layout": {"spatial": info["layout"]["spatial"],
                       "temporal": info["layout"]["temporal"] if clips.kind == "video" else 0},
            "clips": [
                {"start": s, "window": w, "fps": clips.fps, "ids": row, **({"words": wd} if wd is not None else {})}
                for s, w, row, wd in zip(clips.starts, clips.windows, ids.tolist(), words)
            ],
        }
        return Response(json.dumps(record, separators=(",", ":")), media_type="application/json",
                        headers={TOKENIZER_HEADER: tag["tokenizer"]})

    async def _form_file(self, request: Request, body: bytes) -> tuple[bytes, str]:
        """The 'file' field of a multipart body already read (and size-checked) into ``body``."""
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(request.scope, replay).form(max_files=1, max_fields=16)
        except Exception as e:  # noqa: BLE001 - malformed multipart bodies
            raise RequestError(400, f"cannot parse multipart body: {error_cause(e)}") from None
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise RequestError(422, "multipart body needs the file in a field named 'file'")
        return await upload.read(), suffix_for(upload.content_type, upload.filename or "")

    @api.post("/v1/decode", responses={**ERRORS, 200: {"content": {t: {} for t in MEDIA_TYPES.values()}}},
              openapi_extra=DECODE_BODY, response_class=Response,
              summary="ids -> an mp4 (video ids), a png (image ids) or uint8 frames as .npy")
    async def decode(self, request: Request, x_api_key: ApiKey = None) -> Response:
        self._auth(x_api_key)
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise RequestError(415, "send the ids as application/json: {\"ids\": [...], \"format\": \"mp4\"}")
        with self._request_slot():
            data = await self._body(request, self.limits.max_json_bytes)
            return await self._decode(await off_loop(parse_json, schemas.DecodeRequest, data, size=len(data)))

    async def _decode(self, body: schemas.DecodeRequest) -> Response:
        nested = bool(body.ids) and isinstance(body.ids[0], list)
        rows = body.ids if nested else [body.ids]
        info = await self._model_info()
        kind = check_ids(rows, spatial=info["layout"]["spatial"], temporal=info["layout"]["temporal"],
                         sizes=info["codebook_size"], max_rows=self.limits.max_decode_rows)
        fmt = body.format or ("mp4" if kind == "video" else "png")
        if len(rows) > 1 and fmt != "npy":
            raise RequestError(422, f"{len(rows)} clips of ids can only be returned as format 'npy'")
        frames, tag = await self._call("decode", np.asarray(rows, dtype=np.int64))  # (b, t, h, w, c) uint8
        if fmt == "npy":
            buf = io.BytesIO()
            np.save(buf, frames if nested else frames[0])
            payload = buf.getvalue()
        else:
            payload = await asyncio.to_thread(encode_media, frames[0], fmt, body.fps)
        return Response(payload, media_type=MEDIA_TYPES[fmt], headers={TOKENIZER_HEADER: tag["tokenizer"]})


def build_app(args: dict[str, Any] | None = None) -> serve.Application:
    """The application (ingress + model deployment) for a ServeConfig given as a dict (``serve deploy`` args)."""
    config = args if isinstance(args, ServeConfig) else ServeConfig.from_dict(args)
    settings = config.to_dict()
    runtime_env = {"env_vars": dict(config.env)} if config.env else {}
    logging_config = {"enable_access_log": config.access_log}
    model = TokenizerModel.options(
        ray_actor_options={"num_cpus": config.num_cpus, "num_gpus": config.num_gpus, "runtime_env": runtime_env},
        max_ongoing_requests=config.max_ongoing_requests,
        autoscaling_config=config.autoscaling,
        logging_config=logging_config,
        **config.rollout_options,
    ).bind(settings)
    ingress = Ingress.options(
        ray_actor_options={"num_cpus": config.ingress_cpus, "runtime_env": runtime_env},
        max_ongoing_requests=config.limits.max_requests + CONTROL_HEADROOM,
        logging_config=logging_config,
        autoscaling_config=config.ingress_autoscaling,
        **config.rollout_options,
    )
    return ingress.bind(model, config.ingress_settings())
