"""Parse A1111's command-line flags into one frozen `Flags` object.

A1111 behaviour reproduced here (`launch_utils.py`, `paths_internal.py`, `cmd_args.py`, `shared_cmd_options.py`):
- the `COMMANDLINE_ARGS` environment variable is split with `shlex` and **appended** to the command line, so for a
  flag given in both places the environment value wins (argparse keeps the last occurrence);
- `--data-dir` and `--models-dir` are read first, because the defaults of the other path flags hang off them
  (`models` defaults to `<data-dir>/models`);
- `--flag=value` and `--flag value` are the same; unambiguous prefixes of a flag are accepted (argparse's
  `allow_abbrev`, which A1111 leaves on);
- an unknown flag is an error (exit status 2) unless `IGNORE_CMD_ARGS_ERRORS` is set in the environment;
- when no `--styles-file` is given the list is `[<data-dir>/styles.csv]`.

Attribute names equal A1111's `cmd_opts` (`flags.port`, `flags.gradio_auth`, `flags.no_half_vae`, `flags.use_cpu`).
Lists become tuples and the `--ngrok-options` dict a read-only mapping so the object is immutable throughout.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn, Protocol, TextIO, cast

from modules.cli.flag_specs import FLAG_SPECS, GROUP_ORDER, FlagSpec, Rel
from modules.cli.flag_warnings import flag_warnings, is_exposed

INSTALL_ROOT = Path(__file__).resolve().parents[2]
"""The install root (A1111's `script_path`): the directory holding `webui.py` and `modules/`."""

__all__ = ["INSTALL_ROOT", "ExtensionArgument", "FlagError", "FlagSpec", "FlagValues", "Flags", "build_parser", "default_flags", "flag_warnings",
           "help_text", "is_exposed", "merged_argv", "normalized_path", "parse_flags", "suggest_flag"]

ENV_COMMANDLINE_ARGS = "COMMANDLINE_ARGS"
ENV_IGNORE_ERRORS = "IGNORE_CMD_ARGS_ERRORS"

_PYTHON_TYPES = {"switch": bool, "store_false": bool | None, "str": str | None, "int": int | None,
                 "path": str | None, "choice": str, "list": tuple, "append": tuple, "json": Mapping}


class FlagError(SystemExit):
    """A bad command line. Behaves like argparse's exit: `SystemExit` with status 2; `str()` is the one-line reason."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _frozen_getattr(self: Any, name: str) -> Any:
    """Fall back to flags added by extensions (`extra_specs`), so `flags.my_ext_flag` works like on `cmd_opts`."""
    try:
        extra = object.__getattribute__(self, "extra")
    except AttributeError:
        raise AttributeError(name) from None
    if name in extra:
        return extra[name]
    raise AttributeError(f"no flag named {name!r}")


def _as_dict(self: Any) -> dict[str, Any]:
    """Plain JSON-friendly dict of every flag (what A1111's `GET /sdapi/v1/cmd-flags` returns)."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(self):
        if field.name in ("extra", "explicit"):
            continue
        out[field.name] = _thaw(getattr(self, field.name))
    for key, value in self.extra.items():
        out[key] = _thaw(value)
    return out


def _is_set(self: Any, dest: str) -> bool:
    """True when the flag appeared on the command line or in COMMANDLINE_ARGS (not just defaulted)."""
    return dest in self.explicit


Flags = dataclasses.make_dataclass(
    "Flags",
    [(spec.dest, _PYTHON_TYPES[spec.kind]) for spec in FLAG_SPECS]
    + [("extra", Mapping), ("explicit", frozenset)],
    frozen=True,
    namespace={"__getattr__": _frozen_getattr, "as_dict": _as_dict, "is_set": _is_set,
               "__doc__": "Parsed flags, attribute names as A1111's `cmd_opts`; immutable. "
                          "`extra` holds extension flags, `explicit` the names given on the command line."},
)
Flags.__module__ = __name__


class FlagValues(Protocol):
    """The static type of a parsed `Flags` object (its class is made at import time from `FLAG_SPECS`, so the type
    checker sees every flag as an attribute of type Any, and these members with their real types)."""

    extra: Mapping[str, Any]
    explicit: frozenset[str]

    def __getattr__(self, name: str) -> Any: ...

    def as_dict(self) -> dict[str, Any]: ...

    def is_set(self, dest: str) -> bool: ...


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    return value


def _freeze(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    return value


def normalized_path(value: str) -> str:
    """Absolute form of a path flag (A1111 1.10 `normalized_filepath`), with `~` expanded."""
    return os.path.abspath(os.path.expanduser(value))


def _json_object(value: str) -> dict[str, Any]:
    try:
        loaded = json.loads(value)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg} at column {exc.colno}): {value!r}") from None
    if not isinstance(loaded, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"key\": \"value\"}}', got {value!r}")
    return loaded


ExtensionArgument = tuple[tuple[str, ...], Mapping[str, Any]]
"""One `parser.add_argument(*args, **kwargs)` call of an extension's `preload(parser)` (A1111 `preload.py`)."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises `FlagError` instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise FlagError(message)


def _resolve_default(default: Any, bases: Mapping[str, str]) -> Any:
    if isinstance(default, Rel):
        return os.path.join(bases[default.base], *default.parts)
    if isinstance(default, tuple):
        return [_resolve_default(d, bases) for d in default]
    if isinstance(default, dict):
        return dict(default)
    return default


def _add_flag(group: Any, spec: FlagSpec, bases: Mapping[str, str], suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else _resolve_default(spec.default, bases)
    help_text = spec.help
    shown = _resolve_default(spec.default, bases)
    if spec.kind not in ("switch", "store_false") and shown not in (None, "", [], {}):
        help_text += f" (default: {shown})"
    kwargs: dict[str, Any] = {"dest": spec.dest, "default": default, "help": help_text.replace("%", "%%")}
    if spec.kind == "switch":
        kwargs["action"] = "store_true"
    elif spec.kind == "store_false":
        kwargs["action"] = "store_false"
    elif spec.kind == "int":
        kwargs["type"] = int
    elif spec.kind == "path":
        kwargs["type"] = normalized_path
    elif spec.kind == "choice":
        kwargs["choices"] = spec.choices
    elif spec.kind == "list":
        kwargs.update(nargs="+", type=str.lower)
    elif spec.kind == "append":
        kwargs["action"] = "append"
    elif spec.kind == "json":
        kwargs["type"] = _json_object
        kwargs["metavar"] = "JSON"
    group.add_argument(spec.option, **kwargs)


def build_parser(specs: Sequence[FlagSpec] = FLAG_SPECS, *, data_dir: str | None = None,
                 models_dir: str | None = None, suppress_defaults: bool = False,
                 extension_arguments: Sequence[ExtensionArgument] = ()) -> argparse.ArgumentParser:
    """The argparse parser for `specs`, one help group per `FlagSpec.group` (reference order first), then the
    `extension_arguments` extensions added from their `preload.py` (group "extensions")."""
    data = normalized_path(data_dir) if data_dir else str(INSTALL_ROOT)
    bases = {"script": str(INSTALL_ROOT), "data": data,
             "models": normalized_path(models_dir) if models_dir else os.path.join(data, "models")}
    parser = _Parser(
        prog="webui", allow_abbrev=True, usage="%(prog)s [flags]   (COMMANDLINE_ARGS env var is appended)",
        description="Stable Diffusion web UI. Flags keep AUTOMATIC1111's names, types and defaults.",
        epilog=f"Flags in the {ENV_COMMANDLINE_ARGS} environment variable are appended to the command line "
               f"(so they win). Set {ENV_IGNORE_ERRORS} to ignore unknown flags.",
    )
    titles = list(GROUP_ORDER) + sorted({s.group for s in specs} - set(GROUP_ORDER))
    groups = {title: parser.add_argument_group(title) for title in titles if any(s.group == title for s in specs)}
    for spec in specs:
        _add_flag(groups[spec.group], spec, bases, suppress_defaults)
    if extension_arguments:
        group = parser.add_argument_group("extensions (preload.py)")
        for args, kwargs in extension_arguments:
            group.add_argument(*args, **({**kwargs, "default": argparse.SUPPRESS} if suppress_defaults else kwargs))
    return parser


def merged_argv(argv: Sequence[str] | None, env: Mapping[str, str]) -> list[str]:
    """Command line plus `shlex.split(COMMANDLINE_ARGS)` appended, as A1111's `launch_utils` does."""
    args = list(sys.argv[1:] if argv is None else argv)
    extra = env.get(ENV_COMMANDLINE_ARGS, "")
    try:
        args += shlex.split(extra)
    except ValueError as exc:
        raise FlagError(f"{ENV_COMMANDLINE_ARGS} cannot be split like a shell line ({exc}): {extra!r}") from None
    return args


def _pre_parse_dirs(args: list[str]) -> tuple[str | None, str | None]:
    pre = _Parser(add_help=False, allow_abbrev=True)
    pre.add_argument("--data-dir", type=normalized_path, default=None)
    pre.add_argument("--models-dir", type=normalized_path, default=None)
    known, _ = pre.parse_known_args(args)
    return known.data_dir, known.models_dir


def suggest_flag(token: str, specs: Iterable[FlagSpec] = FLAG_SPECS) -> str | None:
    """The known flag closest to a mistyped one (`--lisen` → `--listen`), or None when nothing is close."""
    name = token.split("=", 1)[0]
    options = [s.option for s in specs] + ["--help"]
    normalized = "--" + name.lstrip("-").replace("_", "-").lower()
    if normalized in options and normalized != name:
        return normalized
    matches = difflib.get_close_matches(normalized, options, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _unknown_error(extras: list[str], specs: Sequence[FlagSpec]) -> FlagError:
    token = next((t for t in extras if t.startswith("-")), extras[0])
    if not token.startswith("-"):
        return FlagError(f"unexpected argument {token!r} (flags start with --; see --help)")
    name = token.split("=", 1)[0]
    hint = suggest_flag(name, specs)
    if hint:
        return FlagError(f"unknown flag {name}; did you mean {hint}?")
    return FlagError(f"unknown flag {name} (see --help for the list of flags)")


def parse_flags(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None, *,
                extra_specs: Sequence[FlagSpec] = (), extension_arguments: Sequence[ExtensionArgument] = (),
                stderr: TextIO | None = None) -> FlagValues:
    """Parse `argv` (default `sys.argv[1:]`) plus `env["COMMANDLINE_ARGS"]` into a frozen `Flags`.

    `extra_specs` are flags added by extensions (A1111's `preload.py`); they land in `flags.extra` and are reachable
    as attributes. `extension_arguments` are the raw `add_argument` calls of extensions' `preload(parser)`
    (`modules.extensions.preload`), parsed like A1111 does and reachable the same way. On a bad command line the one-line reason is written to `stderr` (default `sys.stderr`) and
    `FlagError` (a `SystemExit` with status 2) is raised; `--help` prints the grouped help and exits with 0.
    """
    env = os.environ if env is None else env
    err = sys.stderr if stderr is None else stderr
    specs = tuple(FLAG_SPECS) + tuple(extra_specs)
    try:
        _check_unique(specs)
        args = merged_argv(argv, env)
        data_dir, models_dir = _pre_parse_dirs(args)
        parser = build_parser(specs, data_dir=data_dir, models_dir=models_dir, extension_arguments=extension_arguments)
        namespace, extras = parser.parse_known_args(args)
        if extras and ENV_IGNORE_ERRORS not in env:
            raise _unknown_error(extras, specs)
        given, _ = build_parser(specs, data_dir=data_dir, models_dir=models_dir, suppress_defaults=True,
                                extension_arguments=extension_arguments).parse_known_args(args)
    except FlagError as exc:
        print(f"webui: error: {exc.message}", file=err)
        raise
    values = vars(namespace)
    if not values["styles_file"]:
        values["styles_file"] = [os.path.join(data_dir or str(INSTALL_ROOT), "styles.csv")]
    builtin = {spec.dest for spec in FLAG_SPECS}
    core = {k: _freeze(v) for k, v in values.items() if k in builtin}
    extra = MappingProxyType({k: _freeze(v) for k, v in values.items() if k not in builtin})
    return cast(FlagValues, Flags(**core, extra=extra, explicit=frozenset(vars(given))))


def _check_unique(specs: Sequence[FlagSpec]) -> None:
    seen: set[str] = set()
    for spec in specs:
        if spec.option in seen:
            raise FlagError(f"flag {spec.option} is declared twice (an extension re-declares a built-in flag?)")
        seen.add(spec.option)


def default_flags() -> FlagValues:
    """Flags with every default, ignoring the real command line and environment (for tests and tools)."""
    return parse_flags([], env={})


def help_text(extra_specs: Sequence[FlagSpec] = ()) -> str:
    """The `--help` text: flags listed by group."""
    return build_parser(tuple(FLAG_SPECS) + tuple(extra_specs)).format_help()


SECRET_FLAGS = ("gradio_auth", "api_auth", "ngrok")
"""Flags whose values hold passwords or tokens: masked in every response and log line (`public_flags`)."""
SECRET_OPTIONS = tuple(f"--{name.replace('_', '-')}" for name in SECRET_FLAGS)
MASK = "***"


def mask_logins(value: str) -> str:
    """`"u1:p1,u2:p2"` → `"u1:***,u2:***"`; a value without a colon (a token) → `"***"`."""
    return ",".join(f"{part.split(':', 1)[0]}:{MASK}" if ":" in part else MASK for part in value.split(","))


def public_flags(flags: FlagValues) -> dict[str, Any]:
    """The parsed flags for `GET /sdapi/v1/cmd-flags` and diagnostics: A1111's `vars(cmd_opts)` with the passwords
    and tokens of `SECRET_FLAGS` masked (A1111 returns them in plain text), and `ngrok_options` values that look
    like credentials (`auth`, `token`, `password` in the key) masked too."""
    data = flags.as_dict()
    for name in SECRET_FLAGS:
        if data.get(name):
            data[name] = mask_logins(str(data[name]))
    options = data.get("ngrok_options")
    if isinstance(options, dict):
        data["ngrok_options"] = {k: MASK if any(w in k.lower() for w in ("auth", "token", "password")) else v
                                 for k, v in options.items()}
    return data


def _names_a_secret(option: str) -> bool:
    """True when argparse would read `option` as one of `SECRET_OPTIONS`: the option itself or, since the parser
    allows abbreviations (as A1111's), any prefix of one that is not itself a flag (`--gradio-au` is
    `--gradio-auth`, `--api` is its own flag)."""
    if option in SECRET_OPTIONS:
        return True
    if not option.startswith("--") or len(option) < 3 or option in {spec.option for spec in FLAG_SPECS}:
        return False
    return any(secret.startswith(option) for secret in SECRET_OPTIONS)


def masked_argv(args: Sequence[str]) -> list[str]:
    """Command-line arguments for a log line, with the values of `SECRET_OPTIONS` masked (both `--flag value` and
    `--flag=value` forms, also when the flag is abbreviated)."""
    out: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:
            out.append(mask_logins(arg))
            hide_next = False
            continue
        option, eq, value = arg.partition("=")
        if _names_a_secret(option):
            if eq:
                out.append(f"{option}={mask_logins(value)}")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(arg)
    return out
