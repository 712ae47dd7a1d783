"""`retryd web`: the dashboard, an ASGI application (Starlette) served by uvicorn.

It runs as a process of its own, apart from the workers, and reaches the store only through
worker/web/board.py. See docs/dashboard.md.
"""

from worker.web.app import create_app
from worker.web.board import Board
from worker.web.security import check_exposure
from worker.web.server import serve

__all__ = ["Board", "check_exposure", "create_app", "serve"]
