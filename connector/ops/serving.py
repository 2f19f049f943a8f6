"""Run the Flask app under gunicorn (several processes share one database safely)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication


class GunicornServer(BaseApplication):  # type: ignore[misc]
    """gunicorn with its options given in code; each worker process builds its own app."""

    def __init__(self, app_factory: Any, options: dict[str, Any]) -> None:
        self._factory = app_factory
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        app: Flask = self._factory()
        return app


def serve(app_factory: Any, host: str, port: int, workers: int, threads: int = 4) -> None:
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "accesslog": None,
        "timeout": 30,
        "graceful_timeout": 10,
        "preload_app": False,  # engines and pools must be created after fork
    }
    GunicornServer(app_factory, options).run()
