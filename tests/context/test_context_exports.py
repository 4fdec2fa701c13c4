"""The context package's public names resolve, and the Redis backend stays optional."""

from __future__ import annotations

import subprocess
import sys

import context


def test_every_exported_name_resolves() -> None:
    assert sorted(context.__all__) == context.__all__
    for name in context.__all__:
        assert getattr(context, name) is not None, name


def test_importing_the_package_does_not_import_redis() -> None:
    code = "import sys, context, pdp.components; print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
