"""Click options generated from argument dataclasses (the `HfArgumentParser` idea, for click).

Each dataclass field becomes one `--kebab-case` option; its `metadata["help"]` is the CLI doc, its default is
the option default, `bool` fields become `--flag/--no-flag` switches, `Literal[...]` fields become choices and
`tuple[X, ...]` fields options that may be repeated.
The same dataclasses are what the code receives, so the help text and the code cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """`X | None` -> (X, True); anything else -> (tp, False)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _click_type(tp: Any) -> Any:
    if typing.get_origin(tp) is typing.Literal:
        return click.Choice([str(a) for a in typing.get_args(tp)])
    if tp is Path:
        return click.Path(path_type=Path)
    return {int: int, float: float, str: str}.get(tp, str)


def _option(field: dataclasses.Field[Any], tp: Any) -> Callable[[F], F]:
    name = field.name.replace("_", "-")
    help_text = field.metadata.get("help", "")
    required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
    default = None if required else field.default
    base, _ = _unwrap_optional(tp)
    if typing.get_origin(base) is tuple:  # tuple[X, ...]: the option may be given several times
        return click.option(f"--{name}", field.name, type=_click_type(typing.get_args(base)[0]), multiple=True,
                            default=default, help=help_text)
    if base is bool:
        return click.option(f"--{name}/--no-{name}", field.name, default=default, show_default=True, help=help_text)
    return click.option(
        f"--{name}",
        field.name,
        type=_click_type(base),
        default=default,
        required=required,
        show_default=default is not None,
        help=help_text,
    )


def dataclass_options(*classes: type) -> Callable[[F], F]:
    """Decorator adding one click option per field of each dataclass in `classes`."""

    def decorate(fn: F) -> F:
        for cls in reversed(classes):
            hints = typing.get_type_hints(cls)
            for field in reversed(dataclasses.fields(cls)):
                fn = _option(field, hints[field.name])(fn)
        return fn

    return decorate


def from_options(cls: type[T], options: dict[str, Any]) -> T:
    """Build the dataclass `cls` from the parsed click options (extra keys are ignored)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in options.items() if k in names})
