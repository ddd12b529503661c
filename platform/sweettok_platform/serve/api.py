"""The HTTP surface of the endpoint: the FastAPI app, its OpenAPI request bodies, and how every refusal
becomes JSON ``{"status": 4xx, "detail": reason}`` (503s with ``Retry-After``)."""

# no `from __future__ import annotations`: FastAPI must see the real Annotated[...] types through Serve
import asyncio
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from sweettok_platform.serve import schemas
from sweettok_platform.serve.docs import add_offline_docs
from sweettok_platform.serve.limits import RequestError

api = FastAPI(
    title="SweetTok tokenizer endpoint",
    version="1",
    description="Encode videos and images into SweetTok ids (and words), and decode ids back into pixels. "
    "Send the X-API-Key header when the service has a key.",
    docs_url=None,  # /docs and /redoc come from serve.docs: their assets are served here, not from a CDN
    redoc_url=None,
)
add_offline_docs(api)
ERRORS = {s: {"model": schemas.ErrorResponse} for s in (400, 401, 403, 404, 408, 413, 415, 422, 503)}
# Serve's own cap on requests in an ingress replica sits this far above the request pool (limits.max_requests,
# enforced inside): health, info and stats always find a slot, even with the pool held by slow uploads
CONTROL_HEADROOM = 64
INLINE_PARSE_BYTES = 64 * 1024  # smaller JSON/.npy bodies are parsed inline: a thread hop costs more
MEDIA_TYPES = {"mp4": "video/mp4", "png": "image/png", "npy": "application/x-npy"}
ENCODE_BODY = {
    "requestBody": {
        "required": True,
        "description": "The raw file with its Content-Type (video/mp4, video/webm, video/x-msvideo, image/png, "
        "image/jpeg, or application/x-npy for uint8 frames (t,h,w,3)); or multipart/form-data with the file "
        "in field 'file'; or application/json EncodeURIRequest for an object in S3. Clip options go in the "
        "query (or in the JSON body).",
        "content": {
            **{t: {"schema": {"type": "string", "format": "binary"}} for t in
               ("video/mp4", "video/webm", "video/x-msvideo", "image/png", "image/jpeg", "application/x-npy")},
            "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}},
            "application/json": {"schema": schemas.EncodeURIRequest.model_json_schema()},
        },
    }
}
DECODE_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": schemas.DecodeRequest.model_json_schema()}}}}
ApiKey = Annotated[str | None, Header(alias="X-API-Key", description="the service's API key, if it has one")]


def error_response(status: int, reason: str) -> JSONResponse:
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse({"status": status, "detail": reason}, status_code=status, headers=headers)


def parse_json(model: type, data: bytes) -> Any:
    try:
        return model.model_validate_json(data)
    except ValidationError as e:
        first = e.errors()[0]
        raise RequestError(422, f"bad JSON body: {first['msg']} at {'.'.join(map(str, first['loc']))}") from None


async def off_loop(fn: Any, *args: Any, size: int) -> Any:
    """``fn(*args)`` inline for small inputs, else in a thread so the event loop keeps answering."""
    return fn(*args) if size < INLINE_PARSE_BYTES else await asyncio.to_thread(fn, *args)


@api.exception_handler(RequestError)
async def _request_error(_: Request, e: RequestError) -> JSONResponse:
    return error_response(e.status, e.reason)


@api.exception_handler(RequestValidationError)
async def _validation_error(_: Request, e: RequestValidationError) -> JSONResponse:
    first = e.errors()[0] if e.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return error_response(422, f"{where}: {first.get('msg', 'invalid request')}")


@api.exception_handler(HTTPException)
async def _http_error(_: Request, e: HTTPException) -> JSONResponse:
    return error_response(e.status_code, str(e.detail))


def error_cause(e: BaseException) -> str:
    """The message of an error raised in another replica (Ray wraps it), on one line."""
    cause = getattr(e, "cause", None) or e
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0][:300]
