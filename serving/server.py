"""Run the server: uvicorn with uvloop and httptools, one or more worker processes.

The HTTP protocol is uvicorn's httptools one with livereco's limits
(:mod:`serving.protocol`): request timeout, header size, connection limit,
JSON errors. Each worker reads them from the environment, as it reads every
other setting.
"""

from __future__ import annotations

import uvicorn

from online.contract import Settings

__all__ = ["serve"]


def serve(settings: Settings, workers: int = 1, log_level: str = "warning") -> None:
    """Serve until interrupted. Settings reach worker processes through the environment."""
    uvicorn.run(
        "serving.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        loop="uvloop",
        http="serving.protocol:LiverecoHttpProtocol",
        lifespan="on",
        access_log=False,
        log_level=log_level,
        timeout_keep_alive=settings.http_keepalive_s,  # type: ignore[arg-type]  # uvicorn takes any number
        limit_concurrency=None,  # LIVERECO_HTTP_MAX_CONNECTIONS is applied by the protocol, with a JSON 503
    )
