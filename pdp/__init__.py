"""A policy decision point for machine identities: verified SPIFFE/JWT identity,
live context, Cedar policies, explanations, and a decision log that proves itself."""

__version__ = "0.1.0"
