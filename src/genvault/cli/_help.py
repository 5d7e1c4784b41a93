"""How `genvault --help` reads: commands grouped into panels, docstrings as flowing text.

Docstrings are wrapped at 100 columns in the source; Typer's Rich help keeps those line breaks,
so `unwrap` joins each paragraph's lines (the terminal wraps it). Typer also shows a flag's type
as `<bool>` and a required argument as `{name}` in the usage line; `_plain_metavars` shows
neither (a flag takes no value; an argument reads `PROMPT`, `[ID]` when optional).
"""

from __future__ import annotations

import inspect
from typing import Any

import typer

__all__ = ["PANELS", "polish"]

# Command (or group) name -> the help panel it is listed in.
PANELS = {
    "generate": "Generate",
    "chat": "Generate",
    "image": "Generate",
    "embed": "Generate",
    "models": "Generate",
    "logs": "Read",
    "show": "Read",
    "usage": "Read",
    "chats": "Read",
    "search": "Read",
    "files": "Read",
    "export": "Your data",
    "import": "Your data",
    "import-v4": "Your data",
    "erase-user": "Your data",
    "audit": "Your data",
    "serve": "Run the server",
    "db": "Run the server",
    "users": "Run the server",
    "keys": "Run the server",
    "limits": "Run the server",
    "backup": "Operate",
    "restore": "Operate",
    "verify": "Operate",
    "retention": "Operate",
}


def unwrap(text: str) -> str:
    """Each paragraph's lines joined into one (blank lines still separate paragraphs)."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def _command_name(info: Any) -> str:
    return str(info.name or info.callback.__name__.replace("_", "-"))


_ORDER = ["Generate", "Read", "Your data", "Operate", "Run the server"]


def _rank(name: str) -> int:
    panel = PANELS.get(name)
    return _ORDER.index(panel) if panel in _ORDER else len(_ORDER)


def polish(app: typer.Typer, *, top: bool = True) -> None:
    """Unwrapped help for every command of `app` (and its groups); panels for the top level,
    listed in `_ORDER` (Typer shows panels in the order of their first command)."""
    if top:
        app.registered_commands.sort(key=lambda c: _rank(_command_name(c)))
        app.registered_groups.sort(key=lambda g: _rank(str(g.name)))
    for command in app.registered_commands:
        doc = command.help or (inspect.getdoc(command.callback) if command.callback else None)
        if doc:
            command.help = unwrap(doc)
        if top:
            command.rich_help_panel = PANELS.get(_command_name(command), command.rich_help_panel)
    for group in app.registered_groups:
        if top and group.name:
            group.rich_help_panel = PANELS.get(group.name, group.rich_help_panel)
        if group.typer_instance is not None:
            polish(group.typer_instance, top=False)
    _plain_metavars()


_patched = False


def _plain_metavars() -> None:
    global _patched
    if _patched:
        return
    _patched = True
    from typer import core

    option = getattr(core, "TyperOption", None)
    if option is not None and hasattr(option, "display_type_rich"):
        shown = option.display_type_rich

        def display_type_rich(self: Any, ctx: Any) -> str | None:
            if getattr(self, "is_flag", False) or getattr(self, "count", False):
                return None  # a flag takes no value
            return shown(self, ctx)  # type: ignore[no-any-return]

        option.display_type_rich = display_type_rich
    argument = getattr(core, "TyperArgument", None)
    if argument is not None and hasattr(argument, "_usage_display_name"):

        def _usage_display_name(self: Any) -> str:
            name = str(self.metavar or self.name or "").upper()
            name = name if self.required else f"[{name}]"
            return name + ("..." if self.nargs != 1 else "")

        argument._usage_display_name = _usage_display_name
