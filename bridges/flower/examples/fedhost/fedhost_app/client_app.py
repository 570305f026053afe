"""ClientApp: the device's training with FedHost's engine (see fedhost_flower.app)."""

from fedhost_flower.app import client_app as app

__all__ = ["app"]
