"""Shared pieces of the command modules: options whose default lives in the library, deprecated option
spellings, and input errors shown as one line.

Defaults live once, in the library: an option made with ``cls=LibraryDefault`` defaults to ``None`` (the
command then leaves the argument out and the library's own default applies), and ``--help`` shows the
library's value, read from the dataclass field or function parameter when the help is rendered (so
``relaxomap --help`` imports no library module).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
from typing import Any, Callable, Iterable, TypeVar

import click

__all__ = ["LibraryDefault", "library_default", "given", "deprecated_spelling", "user_errors"]

F = TypeVar("F", bound=Callable[..., Any])


def library_default(target: str, name: str) -> Any:
    """The default of field ``name`` of a dataclass, or of parameter ``name`` of a function.

    ``target`` is ``"module:Object"``, e.g. ``"relaxomap.train.config:TrainConfig"``. A field with a
    ``default_factory`` gives the factory's value.

    Raises
    ------
    ValueError : ``name`` is not a field or parameter of ``target``, or it has no default.
    """
    module, _, attr = target.partition(":")
    obj = getattr(importlib.import_module(module), attr)
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            if f.name == name:
                if f.default is not dataclasses.MISSING:
                    return f.default
                if f.default_factory is not dataclasses.MISSING:
                    return f.default_factory()
                break
    else:
        param = inspect.signature(obj).parameters.get(name)
        if param is not None and param.default is not inspect.Parameter.empty:
            return param.default
    raise ValueError(f"{target} has no default for {name!r}")


class LibraryDefault(click.Option):
    """A click option that defaults to None and shows the library's default in ``--help``.

    Extra keyword ``default_from=(target, name)``: where the default is read (see :func:`library_default`);
    ``show_as``: optional function turning the default into the text shown.
    """

    def __init__(self, *args: Any, default_from: tuple[str, str], show_as: Callable[[Any], str] = str,
                 **kwargs: Any) -> None:
        if kwargs.get("default") is not None:
            decls = "/".join(args[0]) if args else "?"
            raise TypeError(f"LibraryDefault option {decls} must not set a default of its own (it falls through "
                            f"to {default_from[0]} {default_from[1]!r})")
        super().__init__(*args, **kwargs)
        self.default_from, self.show_as = default_from, show_as

    def get_help_extra(self, ctx: click.Context) -> Any:
        extra = super().get_help_extra(ctx)
        extra["default"] = self.show_as(library_default(*self.default_from))
        return extra


def given(**options: Any) -> dict[str, Any]:
    """The options that were given (not None): keyword arguments for a library call whose own defaults apply
    to the rest."""
    return {k: v for k, v in options.items() if v is not None}


def deprecated_spelling(new_value: Any, old_value: Any, *, new: str, old: str, command: str) -> Any:
    """Merge an option with its deprecated spelling (kept for one release).

    Returns ``new_value``, or ``old_value`` when only the old spelling was given, after a warning on stderr.
    Empty tuples count as not given (options with ``multiple=True``).

    Raises
    ------
    click.UsageError : both spellings were given.
    """
    def is_given(v: Any) -> bool:
        return v is not None and v != ()

    if not is_given(old_value):
        return new_value
    if is_given(new_value):
        raise click.UsageError(f"{old} is the deprecated spelling of {new}; give {new} only")
    click.echo(f"warning: {old} is deprecated for `relaxomap {command}`; use {new} (the old spelling will be "
               "removed in the next release)", err=True)
    return old_value


def user_errors(fn: F, errors: Iterable[type[BaseException]] = (ValueError, FileNotFoundError, ImportError)) -> F:
    """Turn input errors raised by the library into a one-line ``Error: ...`` (exit status 1), not a traceback."""
    caught = tuple(errors)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except caught as err:
            raise click.ClickException(str(err)) from None

    return wrapper  # type: ignore[return-value]
