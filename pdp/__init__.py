"""A policy decision point for machine identities: verified SPIFFE/JWT identity,
live context, Cedar policies, explanations, and a decision log that proves itself."""

from importlib.metadata import PackageNotFoundError, version

try:  # the one place the version is written is pyproject.toml
    __version__ = version("pdp")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
