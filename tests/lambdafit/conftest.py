"""The handler is compared with the API itself: the service tests' app fixtures, reused."""

from tests.service.conftest import app_settings, client, make_client

__all__ = ["app_settings", "client", "make_client"]
