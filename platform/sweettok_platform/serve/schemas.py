"""Request and response bodies of the endpoint (pydantic; they make up the published OpenAPI schema)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from sweettok_platform.core.media import ClipPolicy, ResizePolicy  # the same choices as encode and the batch job


class EncodeOptions(BaseModel):
    """How to cut clips (as ``sweettok encode`` and the batch job do) and whether to name tokens."""

    model_config = ConfigDict(extra="forbid")

    policy: ClipPolicy = Field("center", description="which clips to take from a video")
    stride: int | None = Field(None, ge=1, description="frames between window starts (policy 'windows')")
    resize: ResizePolicy = Field("squash", description="squash to the model size, or short-side resize + crop")
    seed: int = Field(0, description="seed of policy 'random'")
    words: bool = Field(False, description="also return the word of every token")


class EncodeURIRequest(EncodeOptions):
    """JSON body of ``POST /v1/encode``: an object in S3 instead of an upload."""

    uri: str = Field(..., description="s3://bucket/key of a video or image", examples=["s3://videos/clip.mp4"])


class Layout(BaseModel):
    spatial: int = Field(..., description="N_s: spatial ids first in every row")
    temporal: int = Field(..., description="N_t: temporal ids after them (0 for images)")


class ClipTokens(BaseModel):
    start: int = Field(..., description="first frame of the clip in the source")
    window: int = Field(..., description="index of the clip among the source's clips")
    fps: float = Field(..., description="source frame rate (0 for images and .npy frames)")
    ids: list[int] = Field(..., description="canonical layout [N_s spatial | N_t temporal]")
    words: list[str] | None = Field(None, description="one word per id, when asked for")


class EncodeResponse(BaseModel):
    tokenizer: str = Field(..., description="bundle content hash, or preset:<name>:seed<n>")
    kind: Literal["image", "video"]
    layout: Layout
    clips: list[ClipTokens]


class DecodeRequest(BaseModel):
    """JSON body of ``POST /v1/decode``."""

    model_config = ConfigDict(extra="forbid")

    ids: list[StrictInt] | list[list[StrictInt]] = Field(  # strict: true, "1" and 1.0 are not ids
        ..., description="one clip's ids, or several clips' (several need format 'npy'); JSON integers only"
    )
    format: Literal["mp4", "png", "npy"] | None = Field(
        None, description="mp4 (video ids), png (image ids) or npy (uint8 frames b,t,h,w,c); default by kind"
    )
    fps: float = Field(8.0, gt=0, le=120, description="frame rate of an mp4")


class InfoResponse(BaseModel):
    tokenizer: str
    bundle_hash: str | None
    preset: str
    layout: Layout
    codebook_size: dict[str, int] = Field(..., description="ids per branch: spatial, temporal")
    clip: dict[str, int] = Field(..., description="frames, height, width the model takes")
    batching: bool
    max_batch_size: int


class ErrorResponse(BaseModel):
    status: int
    detail: str = Field(..., description="why the request was refused")
