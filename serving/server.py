"""Run the server: uvicorn with uvloop and httptools, one or more worker processes."""

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
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level=log_level,
        timeout_keep_alive=30,
    )
