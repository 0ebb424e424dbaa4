"""A click group whose subcommands are imported only when they run (fast ``--help``, light start-up)."""

from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    """Subcommands come from ``lazy_commands``: name -> ("module:attribute", one-line help)."""

    def __init__(self, *args, lazy_commands: dict[str, tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.lazy_commands)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.lazy_commands:
            return None
        module_name, attr = self.lazy_commands[name][0].split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_text) for name, (_, help_text) in self.lazy_commands.items()])
