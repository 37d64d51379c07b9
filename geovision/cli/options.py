"""What every command shares: state, shared options, options built from their definitions.

Verbosity and ``--debug`` live in click's context object (:class:`CliState`); shared options
are defined once here; the options of a command are built from its option dataclass in
:mod:`geovision.options`.

Commands import this module; :mod:`geovision.cli.main` imports the commands. Nothing here
imports a library stage, so building the command line costs a few milliseconds.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from geovision.errors import InputError
from geovision.options import OptionField, convert, fields_of

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


@dataclass
class CliState:
    """What the command line was asked for beside the command: kept in ``ctx.obj``.

    Attributes:
        verbosity: -1 with ``-q``, 0 by default, 1 per ``-v``.
        debug: show the traceback of errors (``--debug``).
    """

    verbosity: int = 0
    debug: bool = False

    @property
    def quiet(self) -> bool:
        """``-q``: no progress bars, warnings and errors only."""
        return self.verbosity < 0


def state(ctx: click.Context | None = None) -> CliState:
    """The :class:`CliState` of the running command."""
    return (ctx or click.get_current_context()).ensure_object(CliState)


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        state(ctx).debug = True
    return value


def _set_verbose(ctx: click.Context, param: click.Parameter, value: int) -> int:
    state(ctx).verbosity += value
    return value


def _set_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        state(ctx).verbosity = -1
    return value


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``-v``, ``-q`` and ``--debug``, accepted by the group and by every command."""
    func = click.option("--debug", is_flag=True, expose_value=False, is_eager=True,
                        callback=_set_debug,
                        help="Show the full traceback of errors.")(func)
    func = click.option("-q", "--quiet", is_flag=True, expose_value=False, is_eager=True,
                        callback=_set_quiet,
                        help="Only warnings and errors; no progress bars.")(func)
    func = click.option("-v", "--verbose", count=True, expose_value=False, is_eager=True,
                        callback=_set_verbose,
                        help="More log output (-vv for debug messages).")(func)
    return func


def cluster_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--scheduler`` and ``--workers``, shared by the commands that run Dask graphs."""
    func = click.option(
        "--workers", type=click.IntRange(min=1), default=None, show_default="all cores",
        help="Local worker threads when no --scheduler is given.")(func)
    func = click.option(
        "--scheduler", metavar="ADDRESS", default=None,
        help="Dask scheduler to run on, e.g. tcp://host:8786 (default: local threads).")(func)
    return func


def overwrite_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--overwrite``."""
    return click.option("--overwrite", is_flag=True,
                        help="Replace the output if it exists.")(func)


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--overwrite`` and ``--resume``."""
    func = click.option("--resume", is_flag=True,
                        help="Finish an interrupted run of the same command.")(func)
    return overwrite_option(func)


def output_option(default: str | None, help: str, *,
                  show_default: str | bool = True, name: str = "out") -> Decorator:
    """``-o/--output PATH``."""
    return click.option("-o", "--output", name, type=click.Path(path_type=Path),
                        default=default, show_default=show_default, help=help)


def _converter(opt: OptionField) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None or (opt.spec.multiple and value == ()):
            return opt.default if value is None else value
        try:
            return convert(opt, list(value) if opt.spec.multiple else value)
        except InputError as exc:
            raise click.BadParameter(str(exc).split(": ", 1)[-1], ctx=ctx,
                                     param=param) from None

    return callback


def _click_option(opt: OptionField) -> Decorator:
    spec, kind = opt.spec, opt.kind
    kwargs: dict[str, Any] = {"help": spec.help}
    if spec.metavar:
        kwargs["metavar"] = spec.metavar
    if kind.base is bool and not kind.items:
        if opt.default or kind.optional:
            name = opt.flag[2:]
            return click.option(f"--{name}/--no-{name}", opt.name, default=opt.default,
                                show_default=spec.show_default or True, **kwargs)
        return click.option(opt.flag, opt.name, is_flag=True, **kwargs)
    kwargs["show_default"] = spec.show_default if spec.show_default is not None else (
        opt.default is not None)
    if kind.items:
        if spec.multiple:
            kwargs.update(multiple=True, default=list(opt.default or ()))
        else:
            kwargs["default"] = (None if opt.default is None
                                 else ",".join(f"{v:g}" if isinstance(v, float) else str(v)
                                               for v in opt.default))
        return click.option(opt.flag, opt.name, callback=_converter(opt), **kwargs)
    kwargs["default"] = opt.default
    if spec.choices:
        kwargs["type"] = click.Choice(list(spec.choices))
    elif kind.base in (int, float) and (spec.min is not None or spec.max is not None):
        if kind.base is int:
            kwargs["type"] = click.IntRange(
                min=None if spec.min is None else int(spec.min),
                max=None if spec.max is None else int(spec.max),
                min_open=spec.min_open, max_open=spec.max_open)
        else:
            kwargs["type"] = click.FloatRange(min=spec.min, max=spec.max,
                                              min_open=spec.min_open, max_open=spec.max_open)
    else:
        kwargs["type"] = kind.base
        if spec.rule is not None:
            kwargs["callback"] = _converter(opt)
    return click.option(opt.flag, opt.name, **kwargs)


def dataclass_options(cls: type) -> Decorator:
    """The click options of every command-line field of an options dataclass, in order."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for opt in reversed(fields_of(cls)):
            if opt.spec.cli:
                func = _click_option(opt)(func)
        return func

    return decorate


def take_options(cls: type, kwargs: dict[str, Any]) -> Any:
    """Build ``cls`` from (and remove from) a command's keyword arguments."""
    names = [opt.name for opt in fields_of(cls) if opt.name in kwargs]
    return cls(**{name: kwargs.pop(name) for name in names})


def configure_logging(cli_state: CliState) -> None:
    """Log to stderr at the level ``-v``/``-q`` asked for; progress bars follow ``-q``."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(cli_state.verbosity, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr, force=True)
    if cli_state.verbosity < 2:
        for noisy in ("distributed", "rasterio", "fiona", "pyogrio", "matplotlib", "PIL"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    from geovision.progress import set_quiet

    set_quiet(cli_state.quiet)


def command(name: str, **kwargs: Any) -> Callable[[Callable[..., Any]], click.Command]:
    """A command that takes ``-v``/``-q``/``--debug`` and logs as asked (added by main.py)."""

    def wrap(func: Callable[..., Any]) -> click.Command:
        @functools.wraps(func)
        def run(*args: Any, **kw: Any) -> Any:
            configure_logging(state())
            return func(*args, **kw)

        return click.command(name, **kwargs)(common_options(run))

    return wrap
