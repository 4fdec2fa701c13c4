"""HTTP doors onto the decision service. Nothing here evaluates Cedar itself."""

from pdp.api.app import create_api

__all__ = ["create_api"]
