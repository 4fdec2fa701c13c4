"""pdp.broker exposes a short __all__ of names that exist."""

from __future__ import annotations

import pdp.broker


def test_all_names_exist_and_are_the_parts_a_caller_needs() -> None:
    for name in pdp.broker.__all__:
        assert hasattr(pdp.broker, name), name
    assert {"Broker", "BrokerKeyring", "TaskRegistry", "build_broker"} <= set(pdp.broker.__all__)
