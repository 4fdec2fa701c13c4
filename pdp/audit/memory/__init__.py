"""The in-memory decision log: for tests and ``pdp check``; gone with the process."""

from pdp.audit.memory.log import MemoryDecisionLog

__all__ = ["MemoryDecisionLog"]
