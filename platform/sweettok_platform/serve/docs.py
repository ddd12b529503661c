"""API docs that work with no internet (an air-gapped cluster): ``/docs`` (Swagger UI) and ``/redoc`` pages
whose scripts, styles and icon are served by the endpoint itself from the ``fastapi-offline`` package's files,
instead of FastAPI's default pages, which load them from a CDN. ``/openapi.json`` is FastAPI's own."""

# no `from __future__ import annotations`: FastAPI must see the real types through Serve
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

ASSETS_ROUTE = "/docs-assets"
# the only files served from the assets folder (never a path taken from the request)
ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
          "redoc.standalone.js": "text/javascript", "favicon.png": "image/png"}


def assets_dir() -> Path:
    """The folder of Swagger UI and ReDoc files that ships in the ``fastapi-offline`` wheel."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def add_offline_docs(app: FastAPI) -> None:
    """Add ``/docs``, ``/redoc`` and their asset route to ``app`` (made with ``docs_url=None, redoc_url=None``).

    URLs in the pages carry the request's ``root_path``, so the docs work under a Serve route prefix."""
    folder = assets_dir()

    @app.get(ASSETS_ROUTE + "/{name}", include_in_schema=False)
    async def docs_asset(name: str):
        if name not in ASSETS:
            return JSONResponse({"status": 404, "detail": f"no docs asset {name!r}"}, status_code=404)
        return FileResponse(folder / name, media_type=ASSETS[name], headers={"Cache-Control": "max-age=86400"})

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - docs",
                                   swagger_js_url=f"{root}{ASSETS_ROUTE}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{ASSETS_ROUTE}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{ASSETS_ROUTE}/favicon.png")

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{root}{ASSETS_ROUTE}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{ASSETS_ROUTE}/favicon.png", with_google_fonts=False)
