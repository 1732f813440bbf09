"""What a namespace user may add to the serving pod: spec.args, spec.env, spec.image (pure).

The licence decision covers one model at one revision from the source the operator chose, so the
pod must not load anything else whatever the LLMDeployment says. ``check_overrides`` refuses, with
a ``NotPermitted`` condition naming the field and the fix:

- **args** that are not an option of the pinned engine (facts: ``data/vllm-serve.yaml`` and
  ``data/sglang-server.yaml`` from the engines' own parsers, ``data/tgi-launcher.yaml`` from the
  launcher's source; overrides.yaml ``flags_format`` says which kind), not written with
  their exact long name (argparse would take ``--revis`` for ``--revision``, ``-tp`` for
  ``--tensor-parallel-size``), that kubellm owns (rendered from a spec field) or that select a
  model, weights, tokenizer, source, code or the listening address (``data/overrides.yaml``);
  stray values (vLLM would read a second positional as the model); for TGI, whose entrypoint
  passes ``$@`` unquoted, arguments that bash would split or glob, or that the kubelet would
  expand (``$(VAR)``) into several;
- **env** names with a refused prefix (``HF_``, ``VLLM_``, ``PYTHON``, ``LD_``, ...) unless
  allowed by name, and exact refused names (proxies, ``HOME``, TGI's launcher env of every owned
  or refused flag, which the launcher reads when the flag is absent);
- an **image** other than the runtime's catalogue image (any tag or digest of that repository,
  after the operator's ``--runtime-image`` overrides) unless the governing LicensePolicy's
  ``allowedImages`` has a prefix of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from kubellm.datafiles import load_mapping
from kubellm.errors import SpecError
from kubellm.reasons import Reason
from kubellm.runtimes.catalog import runtime_info

Arity = Literal["switch", "value", "list"]
_SPLIT = re.compile(r"[\s*?\[\]{}'\"\\`]|\$\(|\$\{|^~")
_NUMBER = re.compile(r"^-\d+(\.\d+)?$")


class OverrideRefusedError(SpecError):
    """A spec field asks for what kubellm owns or the policy does not permit."""

    reason = Reason.NOT_PERMITTED


@dataclass(frozen=True)
class Flag:
    name: str
    arity: Arity
    repeatable: bool = False
    env: str | None = None  # TGI: the env var the launcher reads when the flag is absent


@dataclass(frozen=True)
class RuntimePolicy:
    runtime: str
    engine: str  # "vLLM 0.32.0", for messages
    flags: dict[str, Flag]  # every long name incl. negations -> its flag
    owned: dict[str, str]
    refused: dict[str, str]
    defaults: frozenset[str]  # rendered by kubellm unless spec.args sets them
    underscores: bool  # '_' and '-' are the same in flag names (vLLM's FlexibleArgumentParser)
    word_split: bool  # arguments pass through an unquoted shell $@
    no_repeats: bool  # a flag given twice is refused (clap), unless it is repeatable
    env_prefixes: dict[str, str]
    env_refused: dict[str, str]
    env_allowed: frozenset[str]


def _argparse_flags(data: dict[str, Any]) -> dict[str, Flag]:
    """An argparse parser's flags (vllm-serve.yaml, sglang-server.yaml): each long name, its
    long aliases (SGLang's ``--model`` for ``--model-path``) and ``--no-`` negation."""
    out: dict[str, Flag] = {}
    for name, entry in data["flags"].items():
        flag = Flag(name, entry["value"])
        out[name] = flag
        for alias in entry.get("aliases", ()):
            if alias.startswith("--"):
                out[alias] = flag
        if entry.get("negation"):
            out[entry["negation"]] = Flag(entry["negation"], "switch")
    return out


def _clap_flags(data: dict[str, Any]) -> dict[str, Flag]:
    """The TGI launcher's clap flags (tgi-launcher.yaml), each with the env var it reads."""
    return {
        name: Flag(name, "switch" if entry["value"] == "switch" else "value",
                   repeatable=bool(entry.get("repeatable")), env=entry.get("env"))
        for name, entry in data["flags"].items()
    }


_FORMATS = {"argparse": _argparse_flags, "clap": _clap_flags}


def _engine_name(runtime: str, data: dict[str, Any]) -> str:
    """``vLLM 0.32.0``: the catalogue's display name and the facts file's version (or the tag
    of its ``source``, ``owner/repo@v3.3.7 path``)."""
    version = data.get("version") or str(data["source"]).split("@", 1)[-1].split()[0]
    return f"{runtime_info(runtime).display_name} {version}"


@cache
def policy(runtime: str) -> RuntimePolicy:
    """The override policy of ``runtime`` from data/overrides.yaml and its engine's flag facts."""
    data = load_mapping("overrides.yaml")
    common = data["common"]["env"]
    entry = data["runtimes"][runtime]
    facts = load_mapping(entry["flags"])
    clap = entry["flags_format"] == "clap"
    flags = _FORMATS[entry["flags_format"]](facts)
    owned = {str(k): str(v) for k, v in entry.get("owned", {}).items()}
    refused = {str(k): str(v) for k, v in entry.get("refused", {}).items()}
    env = entry.get("env", {})
    env_refused = {**common.get("refused", {}), **env.get("refused", {})}
    for name in (*owned, *refused):  # TGI reads each flag from its env var when it is absent
        if flags.get(name) is not None and flags[name].env:
            env_refused.setdefault(str(flags[name].env), f"the environment form of {name}")
    return RuntimePolicy(
        runtime=runtime,
        engine=_engine_name(runtime, facts),
        flags=flags,
        owned=owned,
        refused=refused,
        defaults=frozenset(entry.get("defaults", [])),
        underscores=bool(entry.get("underscores")),
        word_split=bool(entry.get("word_split")),
        no_repeats=clap,
        env_prefixes={**common.get("refused_prefixes", {}), **env.get("refused_prefixes", {})},
        env_refused={str(k): str(v) for k, v in env_refused.items()},
        env_allowed=frozenset(env.get("allowed", [])),
    )


def _name(token: str, pol: RuntimePolicy) -> tuple[str, str | None]:
    """``--a_b.c=v`` -> (``--a-b``, ``v``): the flag a token addresses and its inline value."""
    name, eq, value = token.partition("=")
    if pol.underscores:
        head, dot, rest = name[2:].partition(".")
        name = "--" + head.replace("_", "-") + (dot + rest if dot else "")
    key = name.split(".", 1)[0]
    return key, (value if eq else None)


def _refuse(index: int, problem: str, fix: str) -> OverrideRefusedError:
    return OverrideRefusedError(f"spec.args[{index}]", problem, fix)


def check_args(runtime: str, args: Sequence[str]) -> list[str]:
    """Refuse what ``args`` may not do for ``runtime``; the flags set, in order, otherwise."""
    pol = policy(runtime)
    seen: list[str] = []
    for i, token in enumerate(args):
        if pol.word_split and _SPLIT.search(token):
            raise _refuse(i, f"{token!r} would be split or expanded by the shell of the "
                             f"{pol.engine} image's entrypoint (it passes $@ unquoted) or by the "
                             "kubelet ($(VAR)), so one argument could become several",
                          "write each flag and value as separate arguments without spaces, "
                          "quotes, glob characters or $( )")
    i = 0
    while i < len(args):
        token = args[i]
        if not token.startswith("--") or token == "--":
            if token.startswith("-") and not _NUMBER.match(token) and token != "--":
                raise _refuse(i, f"{token!r} is a short or abbreviated option",
                              f"write the option's full long name, as {pol.engine} lists it")
            raise _refuse(i, f"{token!r} is not the value of a flag ({pol.engine} would read it "
                             "as another positional argument, e.g. a second model)",
                          "put each value right after its flag, or write --flag=value")
        name, inline = _name(token, pol)
        flag = pol.flags.get(name)
        if flag is None:
            raise _refuse(i, f"{name} is not an option of {pol.engine} (the pinned image); "
                             "kubellm takes exact long names only",
                          f"check the spelling against {pol.engine}'s --help")
        if flag.name in pol.owned:
            raise _refuse(i, f"{name} is set by kubellm", pol.owned[flag.name])
        if flag.name in pol.refused:
            raise _refuse(i, f"{name} is not permitted: {pol.refused[flag.name]}",
                          "remove it; kubellm serves exactly the model, revision and source "
                          "the licence decision covered")
        if not flag.repeatable and name in seen and pol.no_repeats:
            raise _refuse(i, f"{name} is given twice ({pol.engine} refuses a second occurrence)",
                          "keep one")
        seen.append(name)
        i += 1
        if flag.arity == "switch":
            if inline is not None:
                raise _refuse(i - 1, f"{name} takes no value", f"write {name} alone")
            continue
        if inline is not None:
            continue
        values = 0
        while i < len(args) and (not args[i].startswith("-") or _NUMBER.match(args[i])):
            values += 1
            i += 1
            if flag.arity == "value":
                break
        if values == 0:
            raise _refuse(i - 1, f"{name} needs a value", f"write {name} VALUE or {name}=VALUE")
    return seen


def check_env(runtime: str, env: Iterable[dict[str, Any]]) -> None:
    """Refuse environment variables a namespace user may not set for ``runtime``."""
    pol = policy(runtime)
    for index, item in enumerate(env):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            continue  # the API's EnvVar check names that error
        why = pol.env_refused.get(name)
        if why is None and name not in pol.env_allowed:
            why = next((w for p, w in pol.env_prefixes.items() if name.startswith(p)), None)
        if why is not None:
            raise OverrideRefusedError(
                f"spec.env[{index}].name", f"{name} is not permitted: {why}",
                "remove it; the operator sets the model source, cache and offline mode")


def image_repository(image: str) -> str:
    """``registry:5000/org/name:tag@sha256:...`` -> ``registry:5000/org/name``."""
    ref = image.split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    return ref[:colon] if colon > slash else ref


def check_image(image: str | None, catalogue: str, allowed_prefixes: Sequence[str],
                policy_name: str | None) -> None:
    """Refuse ``spec.image`` unless it is the catalogue's repository or policy-allowed."""
    if image is None or image_repository(image) == image_repository(catalogue):
        return
    if any(image.startswith(p) for p in allowed_prefixes):
        return
    where = (f"LicensePolicy {policy_name} allows {', '.join(allowed_prefixes) or 'no other'}"
             if policy_name else "no LicensePolicy allows other images")
    raise OverrideRefusedError(
        "spec.image", f"{image} is not the runtime's image ({image_repository(catalogue)}) and "
                      f"{where}",
        "remove spec.image, or ask the cluster admin to add its prefix to the governing "
        "LicensePolicy's allowedImages")


def check_overrides(runtime: str, args: Sequence[str], env: Iterable[dict[str, Any]],
                    image: str | None, catalogue_image: str, allowed_images: Sequence[str],
                    policy_name: str | None) -> None:
    """Everything above, for one LLMDeployment: args, env, then image."""
    check_args(runtime, args)
    check_env(runtime, env)
    check_image(image, catalogue_image, allowed_images, policy_name)
