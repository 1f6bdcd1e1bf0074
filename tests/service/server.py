"""The child-process server the end-to-end tests use (lives in the package for the benchmarks)."""

from service.devserver import Server, free_port, server_env

__all__ = ["Server", "free_port", "server_env"]
