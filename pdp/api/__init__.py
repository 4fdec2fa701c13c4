"""HTTP doors onto the decision service. Nothing here evaluates Cedar itself."""

from pdp.api.app import create_app

__all__ = ["create_app"]
