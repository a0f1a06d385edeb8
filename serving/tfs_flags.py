"""tensorflow_model_server's command line, accepted as is by `kexport serve`.

TF Serving spells its flags with underscores (`--model_base_path=/models/x`) and parses them with
TensorFlow's flag library: `--flag=value` for values, a bare `--flag` or `--flag=true|false` for
booleans. `kexport serve` declares the flags it acts on once each, under both spellings
(`--model-base-path`, `--model_base_path`; see serving/cli.py); `DeclaredFlags` reads the
underscore spellings from those declarations, and `normalize_argv` runs first:

- booleans written `--flag=true|false` (or `--flag true|false`) become click's on/off options;
- tuning flags that do not apply to this server (thread pools, TF session parallelism, GPU
  memory) are accepted with a value of the right type and returned, so the command can name them
  once on stderr;
- an underscore flag TF Serving does not have fails with TF Serving's words, `unknown argument:`.

Flags whose meaning this server cannot honour safely (ALTS credentials, a platform config, other
SavedModel tags) are refused rather than ignored. No TensorFlow, no click here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from exporter.errors import BadInputError

# TF Serving's older names of flags kexport declares under the current name.
RENAMED_FLAGS = {"use_tflite_model": "prefer_tflite_model"}


@dataclass(frozen=True)
class DeclaredFlags:
    """The TF Serving spellings `kexport serve` declares, read from the command's own options so
    that each option is declared once (in serving/cli.py).

    Attributes:
        booleans: TF Serving name -> (the on spelling, the off spelling or None) click accepts.
        values: TF Serving names of the options that take a value.
    """

    booleans: dict[str, tuple[str, str | None]]
    values: frozenset[str]

    @classmethod
    def from_options(cls, options: Iterable[tuple[Sequence[str], Sequence[str], bool]]):
        """Build from each option's (spellings, off spellings, is a flag); underscore spellings
        are TF Serving's."""
        booleans: dict[str, tuple[str, str | None]] = {}
        values: set[str] = set()
        for spellings, off_spellings, is_flag in options:
            for spelling in spellings:
                name = spelling[2:]
                if not spelling.startswith("--") or "_" not in name:
                    continue
                if is_flag:
                    booleans[name] = (spelling, off_spellings[0] if off_spellings else None)
                else:
                    values.add(name)
        for old, new in RENAMED_FLAGS.items():
            if new in booleans:
                booleans[old] = booleans[new]
        return cls(booleans, frozenset(values))


# Tuning flags of TF Serving that have no counterpart here: accepted, typed, named on stderr.
TUNING_FLAGS = {
    "rest_api_num_threads": int, "num_load_threads": int, "num_unload_threads": int,
    "max_num_load_retries": int, "load_retry_interval_micros": int,
    "flush_filesystem_caches": bool, "tensorflow_session_parallelism": int,
    "tensorflow_session_config_file": str, "tensorflow_intra_op_parallelism": int,
    "tensorflow_inter_op_parallelism": int, "per_process_gpu_memory_fraction": float,
    "num_request_iterations_for_warmup": int, "remove_unused_fields_from_bundle_metagraph": bool,
    "num_tflite_pools": int, "num_tflite_interpreters_per_pool": int,
    "xla_cpu_compilation_enabled": bool, "enable_profiler": bool,
    "thread_pool_factory_config_file": str, "use_saved_model": bool,
    # Accepted only with values that change nothing here (checked in `_refuse_unsafe`).
    "saved_model_tags": str, "use_alts_credentials": bool, "platform_config_file": str,
}


def normalize_argv(args: list[str], declared: DeclaredFlags) -> tuple[list[str], list[str]]:
    """Rewrite TF Serving spellings click cannot parse; return (argv for click, tuning flags).

    Args:
        args: the command line after `kexport serve`.
        declared: the TF Serving spellings the command declares.

    Raises:
        BadInputError: an unknown underscore flag (`unknown argument: --x`), a value of the wrong
            type (TF Serving's `Couldn't interpret value`), or a flag refused as unsafe here.
    """
    out: list[str] = []
    tuning: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            out.extend(args[index - 1:])
            break
        name, has_value, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if "_" not in name:
            out.append(arg)
            continue
        if not has_value and index < len(args) and _takes_next(name, args[index], declared):
            value, has_value = args[index], "="
            index += 1
        if name in declared.booleans:
            on, off = declared.booleans[name]
            wanted = _parse_bool(name, value) if has_value else True
            out.append(on if wanted or off is None else off)
        elif name in declared.values:
            out.extend([f"--{name}", value] if has_value else [arg])
        elif name in TUNING_FLAGS:
            kind = TUNING_FLAGS[name]
            parsed = _parse_bool(name, value) if kind is bool and has_value else (
                True if kind is bool else _parse_value(name, value, kind, has_value))
            _refuse_unsafe(name, parsed)
            tuning.append(f"--{name}" + (f"={value}" if has_value else ""))
        else:
            raise BadInputError(f"unknown argument: {arg}",
                                hint="kexport serve takes tensorflow_model_server's flags and its "
                                "own; see `kexport serve --help`.")
    return out, tuning


def parse_channel_arguments(text: str) -> list[tuple[str, int | str]]:
    """`--grpc_channel_arguments=a=1,b=x` as gRPC server options; integers as int, as TF Serving.

    Raises:
        BadInputError: an entry without `=`.
    """
    options: list[tuple[str, int | str]] = []
    for entry in filter(None, (part.strip() for part in (text or "").split(","))):
        key, sep, value = entry.partition("=")
        if not sep or not key:
            raise BadInputError(f"--grpc_channel_arguments entry '{entry}' is not KEY=VALUE.")
        try:
            options.append((key, int(value)))
        except ValueError:
            options.append((key, value))
    return options


def _takes_next(name: str, following: str, declared: DeclaredFlags) -> bool:
    """Whether `--name following` is the flag's value in the space-separated form."""
    if following.startswith("--"):
        return False
    if name in declared.booleans or TUNING_FLAGS.get(name) is bool:
        return following in ("true", "false")  # anything else is the positional PATH
    return name in TUNING_FLAGS


def _parse_bool(name: str, value: str) -> bool:
    if value in ("true", "false"):
        return value == "true"
    raise BadInputError(f"Couldn't interpret value ={value} for flag {name}.",
                        hint="TF Serving's booleans take =true or =false.")


def _parse_value(name: str, value: str, kind, has_value: bool):
    if not has_value:
        raise BadInputError(f"flag --{name} needs a value (--{name}=VALUE).")
    try:
        return kind(value)
    except ValueError:
        raise BadInputError(f"Couldn't interpret value {value} for flag {name}.") from None


def _refuse_unsafe(name: str, value) -> None:
    if name == "saved_model_tags" and set(str(value).split(",")) != {"serve"}:
        raise BadInputError(f"--saved_model_tags={value} is not supported: kexport serve loads "
                            "the 'serve' MetaGraph only.")
    if name == "use_alts_credentials" and value:
        raise BadInputError("--use_alts_credentials is not supported by kexport serve.",
                            hint="Use --ssl_config_file for TLS.")
    if name == "platform_config_file" and value:
        raise BadInputError("--platform_config_file is not supported by kexport serve: it serves "
                            "the TensorFlow platform only.")
