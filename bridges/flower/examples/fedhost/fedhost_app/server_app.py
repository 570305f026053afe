"""ServerApp: a whole FedHost protocol (see fedhost_flower.app)."""

from fedhost_flower.app import server_app as app

__all__ = ["app"]
