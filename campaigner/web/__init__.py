"""The web app (``campaigner serve``): pages over the library API, one per step of the
CLI's flow: sign in, upload, preview, test, send, watch, download."""

from campaigner.web.app import create_app
from campaigner.web.context import Web

__all__ = ("Web", "create_app")
