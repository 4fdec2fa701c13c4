"""A Typer group whose commands are imported when one is looked up, not at start.

``pdp serve`` needs one command module; importing all of them (the decision log's
readers for ``pdp audit``, the bundle tools, the admin clients) made every command,
``--version`` included, pay for the rest. :class:`LazyCommands` is the group's
``commands`` mapping: its keys are every command's name, in the order ``pdp --help``
lists them, known without importing anything; a command is built from its module the
first time it is asked for (running it, its ``--help``, the root ``--help``, completion),
by the same Typer calls an eager ``app.command``/``app.add_typer`` would make, so its
options, help and panel are the same (tests/cli/test_lazy_group.py compares them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperGroup
from typer.main import get_group

from pdp.collector import paused

Register = Callable[[typer.Typer], None]
"""Registers one module's commands on the Typer app it is given, importing the module."""


@dataclass(frozen=True, slots=True)
class Lazy:
    """The commands ``register`` adds, by name."""

    names: tuple[str, ...]
    register: Register


class LazyCommands(MutableMapping[str, Any]):
    """``name -> click command`` for a group of :class:`Lazy` entries: every name known
    up front, each entry's commands built (its module imported) on first access."""

    def __init__(self, entries: tuple[Lazy, ...], rich_markup_mode: Any) -> None:
        self._entries = {name: entry for entry in entries for name in entry.names}
        self._built: dict[str, Any] = {}
        self._markup = rich_markup_mode

    def _build(self, entry: Lazy) -> None:
        holder = typer.Typer(rich_markup_mode=self._markup)
        with paused():  # the module's imports: pdp.collector
            entry.register(holder)
        commands = get_group(holder).commands
        if set(commands) != set(entry.names):  # the table in main.py is out of date
            raise RuntimeError(f"{sorted(commands)} registered, {list(entry.names)} listed")
        self._built.update(commands)

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            self._build(self._entries[name])  # KeyError for a name no entry lists
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:  # click's add_command
        self._entries.pop(name, None)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        self._entries.pop(name, None)
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._entries, *self._built]))

    def __len__(self) -> int:
        return len(set(self._entries) | set(self._built))


def lazy_group(entries: tuple[Lazy, ...]) -> type[TyperGroup]:
    """A :class:`TyperGroup` class (for ``typer.Typer(cls=...)``) whose commands are
    ``entries``, in their order."""

    class LazyTyperGroup(TyperGroup):
        def __init__(self, **attrs: Any) -> None:
            super().__init__(**attrs)
            eager = dict(self.commands)  # any registered on the app itself: none in `pdp`
            self.commands = LazyCommands(entries, self.rich_markup_mode)
            self.commands.update(eager)

    return LazyTyperGroup


__all__ = ["Lazy", "LazyCommands", "lazy_group"]
