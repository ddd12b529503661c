"""The Ray Serve encode/decode endpoint: ``start(ServeConfig(...)) -> base URL``; ``build_app`` for ``serve deploy``."""

from sweettok_platform.serve.config import ServeConfig, deploy_config
from sweettok_platform.serve.limits import LimitsConfig

__all__ = ["LimitsConfig", "ServeConfig", "build_app", "deploy_config", "ingress_urls", "start", "stop"]


def __getattr__(name: str):  # the Ray/FastAPI side is imported only when used
    if name == "build_app":
        from sweettok_platform.serve import app

        return app.build_app
    if name in ("ingress_urls", "start", "stop"):
        from sweettok_platform.serve import lifecycle

        return getattr(lifecycle, name)
    raise AttributeError(name)
