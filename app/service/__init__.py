"""The HTTP service (`sculptrag serve`): FastAPI on uvicorn over the same pipeline as the CLI and the app.

`app.py` builds the application (create_app); `answers.py` and `documents.py` are its routes; `auth.py` says
who calls (API keys, or the app's trusted sign-in proxy) and with which groups; `scheduler.py` queues answer
jobs in front of the generator and batches them; `limits.py`, `errors.py` and `metrics.py` keep every
answer bounded, JSON and counted. docs/service.md is the user's guide.
"""

from .app import create_app

__all__ = ["create_app"]
