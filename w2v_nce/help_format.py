"""The CLI's help in one plain style: arguments by their names, text wrapped at spaces only, the options in groups
with every default as `[default: X]`."""

from __future__ import annotations

import re

from typer.core import TyperCommand


def plain_arguments() -> None:
    """Typer 0.2x labels an argument with its Python type in the help (`WORD <list[str]>`) and a required one with
    braces in the usage line (`{CORPUS}`); neither is for a user. Where this Typer has those two hooks, an argument
    shows its name alone, as click and older Typers do."""
    from typer import core
    arg = getattr(core, "TyperArgument", None)
    if arg is None:
        return
    if hasattr(arg, "display_type_rich"):
        arg.display_type_rich = lambda self, ctx: None
    if hasattr(arg, "_usage_display_name"):
        def usage(self) -> str:
            name = self.metavar or self.name.upper()
            return (name if self.required else f"[{name}]") + ("..." if self.nargs != 1 else "")
        arg._usage_display_name = usage


def whole_words() -> None:
    """Help text wrapped at spaces only: click's wrapper also breaks at hyphens (`sg-` / `neg`, `--sync-` /
    `hot-words`), which cuts the names a user types."""
    import importlib
    package = TyperCommand.__mro__[1].__module__.rsplit(".", 1)[0]  # click, or the copy newer Typers carry
    textwrap = importlib.import_module(f"{package}._textwrap")  # which click's wrap_text imports at each call
    if getattr(textwrap.TextWrapper, "whole_words", False):
        return

    class Wrapper(textwrap.TextWrapper):
        whole_words = True

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "break_on_hyphens": False})
    textwrap.TextWrapper = Wrapper


class Panels(TyperCommand):
    """Help with the options in groups (their rich_help_panel), as Typer's rich help draws them, in the plain help
    this CLI prints; every default as `[default: X]` (click writes a default given as text in parentheses)."""

    def format_options(self, ctx, formatter) -> None:
        groups: dict[str, list] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                default = "Arguments" if param.param_type_name == "argument" else "Options"
                record = (record[0], re.sub(r"\[default: \((.*)\)\]$", r"[default: \1]", record[1]))
                groups.setdefault(getattr(param, "rich_help_panel", None) or default, []).append(record)
        order = ("Arguments", "Model", "Head", "Data", "Run")  # then the others as they come, Options last
        for name in sorted(groups, key=lambda g: (g == "Options", order.index(g) if g in order else len(order))):
            records = groups[name]
            with formatter.section(name):
                formatter.write_dl(records)
