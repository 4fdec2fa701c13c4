"""What the PDP accepts as an id: any string Cedar accepts, bounded, printable.

Cedar takes any string as an entity id (``a::""`` is valid) and as a policy
``@id`` (https://docs.cedarpolicy.com/policies/syntax-entity.html). Ids reach
decision logs, terminals and explanations, so the PDP refuses control
characters (C0, DEL, C1), which could forge lines there; everything else Cedar
accepts is accepted, the empty string included.
"""

from __future__ import annotations

import re

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(value: str) -> str:
    """``value`` unchanged, or ``ValueError`` when it holds a control character."""
    found = CONTROL_CHARACTERS.search(value)
    if found:
        raise ValueError(f"must not contain control characters (found U+{ord(found.group()):04X})")
    return value
