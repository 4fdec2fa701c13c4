"""The identity package exposes a short, importable public API."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import pdp.identity
from pdp.identity.errors import IdentityError

MODULES = sorted(m.name for m in pkgutil.iter_modules(pdp.identity.__path__))


def test_package_all_is_short_and_importable() -> None:
    assert len(pdp.identity.__all__) <= 15
    for name in pdp.identity.__all__:
        assert hasattr(pdp.identity, name), name


@pytest.mark.parametrize("module_name", MODULES)
def test_every_module_declares_an_importable_all(module_name: str) -> None:
    module = importlib.import_module(f"pdp.identity.{module_name}")
    assert module.__all__, module_name
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name}"


def test_every_identity_error_names_a_distinct_reason_code() -> None:
    classes = IdentityError.__subclasses__()
    codes = [cls.code for cls in classes]
    assert len(classes) == 18 and len(set(codes)) == len(codes)
    assert all(code.value.startswith("identity.") for code in codes)
