"""Fuzzing the Hub side (issue 12, item 2): malformed model cards, config.json files, safetensors
indexes and headers, and misbehaving HTTP answers give a condition, never a crash.

Cases derive from a real-shaped repo (Qwen/Qwen2.5-7B-Instruct of the fixture catalogue: its
card, config.json, safetensors index and shard headers) by mutations at every level (wrong types,
missing and unknown fields, extreme numbers, unicode) or by raw bytes (broken front matter, not
JSON, truncated, a length prefix of 2**60). The contract, for every case: ``FactsResolver.resolve``
returns facts or raises a ``KubellmError`` subclass with a catalogued reason, and
``plan_deployment`` on the facts returns a plan (deployable or refused with a reason).

- offline, in-process: the case is written into an HF cache (tmpfs when there is one) and
  resolved with ``HF_HUB_OFFLINE`` (patched constants), then planned;
- online, in a subprocess per batch (huggingface_hub reads HF_ENDPOINT once): the cases are
  served by ``hubfixtures.faults.FaultyHub``, which also answers with status codes (with and
  without ``X-Error-Code``, JSON, HTML or empty bodies), truncated bodies, other content types,
  mutated model_info documents and reset connections; ``hubfixtures.faults`` resolves and plans
  each case and reports crashes with their traceback instead of dying.

Derandomised and bounded like tests/unit/test_fuzz_plan.py; counts and times print with ``-s``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from fuzzing import mutated
from hubfixtures.cache import write_repo
from hubfixtures.faults import Fault, RawRepo, run_fuzz, serve_faulty_hub
from hubfixtures.models import CATALOGUE
from hubfixtures.server import _info
from kubellm.reasons import Reason

TEMPLATE = CATALOGUE["Qwen/Qwen2.5-7B-Instruct"]
INDEX = "model.safetensors.index.json"
SHARD = next(f.path for f in TEMPLATE.files if f.path.endswith(".safetensors"))
REASONS = {str(r) for r in Reason}
COUNTS: dict[str, int] = {}
TIMES: dict[str, float] = {}
OUTCOMES: dict[str, int] = {}
SLOW: list[tuple[float, str]] = []

FUZZ = settings(
    derandomize=True, database=None, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)


# ------------------------------------------------------------------ strategies


def _json_copy(doc: Any) -> Any:
    return json.loads(json.dumps(doc))


def _bytes(doc: Any) -> bytes:
    return json.dumps(doc, default=str).encode()


VALID_CARD = st.builds(lambda: _json_copy({**TEMPLATE.card, "license_name": "qwen",
                                           "datasets": ["d/x"],
                                           "extra_gated_eu_disallowed": False}))
VALID_CONFIG = st.builds(lambda: _json_copy({**(TEMPLATE.config or {}),
                                             "quantization_config": {"quant_method": "awq",
                                                                     "bits": 4,
                                                                     "group_size": 128}}))
VALID_INDEX = st.builds(lambda: json.loads(TEMPLATE.file(INDEX).read()))  # type: ignore[union-attr]

RAW_README = st.sampled_from([
    b"", b"no front matter at all\n", b"---\nlicense: [\n---\n", b"---\n- a list\n- b\n---\n",
    b"---\njust a string\n---\n", b"---\nlicense: mit\n", b"---\n---\n", b"\xff\xfe\x00\x01",
    b"---\nlicense: !!python/name:os.system x\n---\n", b"---\r\nlicense: mit\r\n---\r\n",
    b"\xef\xbb\xbf---\nlicense: mit\n---\n", b"---\n" + b"a: " + b"[" * 600 + b"\n---\n",
    b"---\nlicense: 5\nbase_model: {a: 1}\ntags: 7\n---\n", b"---\n\tlicense: mit\n---\n",
])
RAW_JSON = st.sampled_from([
    b"", b"{", b"[]", b"[1, 2]", b'"a string"', b"null", b"5", b"NaN", b'{"a": NaN}',
    b'{"num_hidden_layers": 1e999}', b"\xff\xfe", b"{}" * 2, b"[" * 5000 + b"]" * 5000,
    b'{"hidden_size": "4096", "num_hidden_layers": "28"}', b'{"metadata": 5, "weight_map": 5}',
    b'{"metadata": {"total_size": -5}}', b'{"metadata": {"total_size": 1e300}}',
    b'{"text_config": 5, "vision_config": {}}', b'{"architectures": "LlamaForCausalLM"}',
])


@st.composite
def raw_header(draw: st.DrawFn) -> bytes:
    """A safetensors shard that is not one: bad length prefix, truncated or junk JSON."""
    kind = draw(st.sampled_from(["short", "huge", "truncated", "not-json", "list", "entries"]))
    if kind == "short":
        return b"\x01\x02"
    if kind == "huge":
        return struct.pack("<Q", 2**60) + b"{}"
    if kind == "truncated":
        return struct.pack("<Q", 1000) + b'{"a": '
    if kind == "not-json":
        return struct.pack("<Q", 4) + b"\xff\xff\xff\xff"
    if kind == "list":
        return struct.pack("<Q", 2) + b"[]"
    entry = draw(mutated(st.just({"dtype": "BF16", "shape": [3584, 3584],
                                  "data_offsets": [0, 25690112]})))
    raw = _bytes({"__metadata__": {"format": "pt"}, "model.embed.weight": entry})
    return struct.pack("<Q", len(raw)) + raw


@st.composite
def broken_repo(draw: st.DrawFn, repo_id: str) -> RawRepo:
    """The template with 1-3 of its metadata files broken (as documents or as bytes)."""
    raw: dict[str, bytes] = {}
    dropped: set[str] = set()
    card: dict[str, Any] = _json_copy(TEMPLATE.card)
    config: dict[str, Any] | None = _json_copy(TEMPLATE.config)
    for part in draw(st.lists(st.sampled_from(["card", "readme", "config", "config-bytes",
                                                "index", "index-bytes", "header", "no-config",
                                                "no-index"]),
                              min_size=1, max_size=3, unique=True)):
        if part == "card":
            doc = draw(mutated(VALID_CARD))
            # what the fixture serves as cardData must be JSON (the Hub parsed the YAML already)
            card = json.loads(_bytes(doc)) if isinstance(doc, dict) else {}
            raw["README.md"] = ("---\n" + json.dumps(doc, default=str) + "\n---\n# x\n").encode()
        elif part == "readme":
            raw["README.md"] = draw(RAW_README)
        elif part == "config":
            doc = draw(mutated(VALID_CONFIG))
            config = doc if isinstance(doc, dict) else config
            raw["config.json"] = _bytes(doc)
        elif part == "config-bytes":
            raw["config.json"] = draw(RAW_JSON)
        elif part == "index":
            raw[INDEX] = _bytes(draw(mutated(VALID_INDEX)))
        elif part == "index-bytes":
            raw[INDEX] = draw(RAW_JSON)
        elif part == "header":
            raw[SHARD] = draw(raw_header())
        elif part == "no-config":
            config = None
            raw.pop("config.json", None)
        else:
            raw.pop(INDEX, None)
            dropped.add(INDEX)
    files = tuple(f for f in TEMPLATE.files if f.path not in raw and f.path not in dropped)
    return RawRepo(repo_id, card if isinstance(card, dict) else {}, files,
                   config if isinstance(config, dict) else None, raw=tuple(raw.items()))


def plain(repo_id: str) -> RawRepo:
    """The template under another id, unbroken."""
    return RawRepo(repo_id, _json_copy(TEMPLATE.card), TEMPLATE.files, _json_copy(TEMPLATE.config))


SPECS = st.sampled_from([{}, {"quantization": "none"}, {"quantization": "awq"},
                         {"runtime": "tgi"}, {"context": {"maxModelLen": 4096}},
                         {"gpu": {"type": "NVIDIA-L4", "count": 1}}])


def check(outcome: dict[str, Any], case: Any) -> None:
    """The contract of the module docstring for one resolve + plan."""
    assert outcome["crash"] is None, f"crash on {case}:\n{outcome['crash']}"
    if outcome["error"] is not None:
        assert outcome["error"].endswith("Error") and outcome["reason"] in REASONS, outcome
        assert outcome["message"], outcome
        key = f"error:{outcome['reason']}"
    else:
        assert outcome["plan"] == "deployable" or outcome["plan"] in REASONS, outcome
        key = f"plan:{outcome['plan']}"
    OUTCOMES[key] = OUTCOMES.get(key, 0) + 1


# ------------------------------------------------------------------ offline, in-process


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        with tempfile.TemporaryDirectory(dir=shm, prefix="kubellm-hubfuzz-") as d:
            yield Path(d)
    else:
        yield tmp_path_factory.mktemp("hubfuzz")


@pytest.fixture(scope="module")
def offline(cache_root: Path) -> Iterator[Path]:
    from huggingface_hub import constants

    hub = cache_root / "hub"
    hub.mkdir()
    write_repo(hub, CATALOGUE["Qwen/Qwen2.5-7B"])  # the base model, so the chain resolves
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(constants, "HF_HUB_OFFLINE", True)
        mp.setattr(constants, "HF_HUB_CACHE", str(hub))
        yield hub


_counter = iter(range(10**9))


@settings(FUZZ, max_examples=350)
@given(data=st.data(), spec=SPECS)
def test_fuzz_hub_offline_cache(offline: Path, data: st.DataObject, spec: dict[str, Any]) -> None:
    from hubfixtures.faults import fuzz_one
    from kubellm.modelinfo import FactsResolver

    started = time.perf_counter()
    repo = data.draw(broken_repo(f"fuzz/offline-{next(_counter)}"))
    write_repo(offline, repo, sparse=True)
    outcome = dataclasses.asdict(fuzz_one(FactsResolver(cache_dir=offline),
                                          {"repo": repo.repo_id, "spec": spec}))
    check(outcome, {"repo": repo.repo_id, "raw": repo.raw, "card": repo.card,
                    "config": repo.config})
    COUNTS["offline"] = COUNTS.get("offline", 0) + 1
    TIMES["offline"] = TIMES.get("offline", 0.0) + time.perf_counter() - started


# ------------------------------------------------------------------ online, a subprocess per batch

STATUSES = [400, 401, 403, 404, 405, 409, 410, 413, 416, 422, 429, 500, 502, 503, 504]
CODES = [None, "RepoNotFound", "RevisionNotFound", "EntryNotFound", "GatedRepo", "Weird"]
WHERE = ["info", "file:config.json", f"file:{INDEX}", "file:README.md", "files", "any"]


@st.composite
def fault(draw: st.DrawFn, repo: RawRepo) -> Fault | None:
    kind = draw(st.sampled_from(["none", "status", "status", "truncate", "body", "info",
                                 "info", "reset"]))
    where = draw(st.sampled_from(WHERE))
    if kind == "none":
        return None
    if kind == "status":
        return Fault("status", where, status=draw(st.sampled_from(STATUSES)),
                     error_code=draw(st.sampled_from(CODES)),
                     body=draw(st.sampled_from(["json", "html", "empty"])),
                     head_too=draw(st.booleans()))
    if kind == "truncate":
        return Fault("truncate", draw(st.sampled_from(["info", "file:config.json",
                                                       f"file:{INDEX}"])),
                     data=json.dumps(_info(repo, blobs=True)).encode()
                     if where == "info" else _bytes(repo.config))
    if kind == "body":
        return Fault("body", where, data=draw(st.sampled_from(
            [b"<html>maintenance</html>", b"", b"[]", b"null", b"\xff\xfe"])),
            content_type=draw(st.sampled_from(["text/html", "application/json",
                                               "application/octet-stream"])))
    if kind == "info":
        document = _info(repo, blobs=True)
        if draw(st.booleans()):
            document.pop("safetensors", None)  # the client then reads the shard headers
        return Fault("info", "info", document=draw(mutated(st.just(document))))
    return Fault("reset", draw(st.sampled_from(["info", "file:config.json"])))


@st.composite
def online_batch(draw: st.DrawFn, batch: int, size: int) -> list[tuple[RawRepo, Fault | None,
                                                                       dict[str, Any]]]:
    out = []
    for i in range(size):
        repo = draw(broken_repo(f"fuzz/online-{batch}-{i}")) if draw(st.booleans()) else \
            plain(f"fuzz/online-{batch}-{i}")
        out.append((repo, draw(fault(repo)), draw(SPECS)))
    return out


def _run_online(cases: list[tuple[Any, Fault | None, dict[str, Any]]], home: Path) -> list[Any]:
    models: dict[str, Any] = {"Qwen/Qwen2.5-7B": CATALOGUE["Qwen/Qwen2.5-7B"]}
    faults: dict[str, Fault] = {}
    for repo, flt, _ in cases:
        models[repo.repo_id] = repo
        if flt is not None:
            faults[repo.repo_id] = flt
    with serve_faulty_hub(models, faults) as hub:
        env = {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(home),
               "HF_HUB_CACHE": str(home / "hub"), "KUBELLM_TEST_TIMEOUT": "3",
               "HF_HUB_ETAG_TIMEOUT": "3", "HF_HUB_DOWNLOAD_TIMEOUT": "3",
               "KUBELLM_FUZZ_NO_BACKOFF": "1"}
        calls = [{"repo": repo.repo_id, "spec": spec} for repo, _, spec in cases]
        return run_fuzz(calls, env)


_batches = iter(range(10**9))


@settings(FUZZ, max_examples=2, phases=[Phase.explicit, Phase.generate])
@given(data=st.data())
def test_fuzz_hub_online(cache_root: Path, data: st.DataObject) -> None:
    """Batches of cases (one driver process each); no shrinking: the failing case is printed."""
    started = time.perf_counter()
    batch = next(_batches)
    cases = data.draw(online_batch(batch, 150))
    results = _run_online(cases, cache_root / f"online-{batch}")
    for (repo, flt, spec), outcome in zip(cases, results, strict=True):
        check(outcome, {"repo": repo.repo_id, "raw": repo.raw, "fault": flt, "spec": spec})
        SLOW.append((outcome["extra"]["seconds"], str(flt)[:150]))
    COUNTS["online"] = COUNTS.get("online", 0) + len(cases)
    TIMES["online"] = TIMES.get("online", 0.0) + time.perf_counter() - started


# Fixed cases whose condition is known: the mapping, not only the absence of a crash.
MAPPED = [
    (Fault("status", "info", status=500), "HubUnavailable"),
    (Fault("status", "info", status=503, body="html"), "HubUnavailable"),
    (Fault("status", "info", status=429), "HubUnavailable"),
    (Fault("status", "info", status=404, error_code="RepoNotFound"), "ModelNotFound"),
    (Fault("status", "info", status=401), "GatedModel"),
    (Fault("status", "info", status=403, body="empty"), "GatedModel"),
    (Fault("status", "info", status=400), "HubUnavailable"),
    (Fault("status", "info", status=404, body="html"), "HubUnavailable"),
    (Fault("body", "info", data=b"<html>a proxy login page</html>", content_type="text/html"),
     "HubUnavailable"),
    (Fault("truncate", "info", data=b'{"id": "x", "sha": "' + b"0" * 40 + b'"}'),
     "HubUnavailable"),
    (Fault("info", "info", document=[1, 2]), "HubUnavailable"),
    (Fault("info", "info", document={"id": 5, "siblings": "nope", "sha": 7}), "HubUnavailable"),
    (Fault("reset", "info"), "HubUnavailable"),
    (Fault("status", "file:config.json", status=502, head_too=True), "HubUnavailable"),
    (Fault("truncate", "file:config.json", data=b'{"hidden_size": 3584}'), "HubUnavailable"),
    (Fault("body", "file:config.json", data=b"<html>oops</html>", content_type="text/html",
           head_too=True), "InvalidModelMetadata"),
    (Fault("body", f"file:{INDEX}", data=b"[1, 2", head_too=True), "InvalidModelMetadata"),
]


def test_fuzz_hub_http_errors_map_to_conditions(cache_root: Path) -> None:
    started = time.perf_counter()
    cases = [(plain(f"fuzz/mapped-{i}"), flt, {})
             for i, (flt, _) in enumerate(MAPPED)]
    results = _run_online(cases, cache_root / "mapped")
    wrong = []
    for (repo, flt, _), (_, want), outcome in zip(cases, MAPPED, results, strict=True):
        check(outcome, {"repo": repo.repo_id, "fault": flt})
        got = outcome["reason"] or outcome["plan"]
        SLOW.append((outcome["extra"]["seconds"], str(flt)))
        if got != want:
            wrong.append((flt, want, got, outcome["message"]))
    assert not wrong, "\n".join(map(str, wrong))
    COUNTS["mapped"] = len(cases)
    TIMES["mapped"] = time.perf_counter() - started


def test_fuzz_hub_case_counts() -> None:
    """Runs last: prints what was fuzzed."""
    print("slowest:", sorted(SLOW, reverse=True)[:5])
    print(f"\nfuzz hub: {COUNTS} = {sum(COUNTS.values())} cases, outcomes {OUTCOMES}, seconds "
          f"{ {k: round(v, 1) for k, v in TIMES.items()} }")
    if len(COUNTS) == 3:
        assert sum(COUNTS.values()) >= 500



# ------------------------------------------------------------------ regressions, one per crash site

def _shard(header: dict[str, Any]) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw


@pytest.mark.parametrize(
    ("raw", "error", "words"),
    [
        # json.JSONDecodeError / UnicodeDecodeError / RecursionError in sources._load_json
        ({"config.json": b"{"}, "ModelMetadataError", "config.json of fuzz/reg-0@"),
        ({"config.json": b"[1, 2]"}, "ModelMetadataError", "is a JSON list, not an object"),
        ({"config.json": "{}".encode("utf-16")}, "ModelMetadataError", "not UTF-8 text"),
        ({"config.json": b"[" * 5000 + b"]" * 5000}, "ModelMetadataError", "nested too deeply"),
        ({"config.json": b"<html>login</html>"}, "ModelMetadataError", "an HTML page"),
        ({INDEX: b'{"metadata": '}, "ModelMetadataError", f"{INDEX} of"),
        # TypeError / IndexError in parse.header_stats; a truncated or implausible header
        ({SHARD: struct.pack("<Q", 2**60)}, "ModelMetadataError", "implausible"),
        ({SHARD: struct.pack("<Q", 500) + b'{"a": '}, "ModelMetadataError", "truncated"),
        ({SHARD: _shard({"t": {"shape": "x"}})}, "ModelMetadataError",
         "dtype None / shape 'x' malformed"),
        ({SHARD: _shard({"t": {"dtype": "F16", "shape": [2], "data_offsets": [4]}})},
         "ModelMetadataError", "data_offsets [4] malformed"),
        ({SHARD: _shard({"t": {"dtype": "F16", "shape": [-2], "data_offsets": [0, 4]}})},
         "ModelMetadataError", "shape [-2] malformed"),
    ],
)
def test_unreadable_metadata_is_invalid_model_metadata(offline: Path, raw: dict[str, bytes],
                                                       error: str, words: str) -> None:
    from hubfixtures.faults import fuzz_one
    from kubellm.modelinfo import FactsResolver

    repo = RawRepo("fuzz/reg-0", _json_copy(TEMPLATE.card), TEMPLATE.files,
                   _json_copy(TEMPLATE.config), raw=tuple(raw.items()))
    write_repo(offline, repo)
    out = fuzz_one(FactsResolver(cache_dir=offline), {"repo": repo.repo_id})
    assert (out.crash, out.error, out.reason) == (None, error, "InvalidModelMetadata"), out
    assert words in (out.message or ""), out.message


@pytest.mark.parametrize("readme", [b"---\nlicense: [\n---\n", b"---\n\xff\xfe\n---\n",
                                    b"---\n" + b"a: " + b"[" * 600 + b"\n---\n",
                                    b"---\nlicense: !!python/name:os.system x\n---\n"])
def test_unreadable_card_metadata_is_a_missing_licence_fact(offline: Path, readme: bytes) -> None:
    """yaml / Unicode / Recursion errors in ModelCard.load: the card reads as empty, the facts say
    why, and the licence decision names it (a Warn policy deploys with that warning)."""
    from hubfixtures.faults import fuzz_one
    from kubellm.api.v1alpha1 import LicensePolicy, LicensePolicySpec, ObjectMeta
    from kubellm.license import decide
    from kubellm.modelinfo import FactsResolver

    repo = RawRepo("fuzz/reg-card", {}, TEMPLATE.files, _json_copy(TEMPLATE.config),
                   raw=(("README.md", readme),))
    write_repo(offline, repo)
    out = fuzz_one(FactsResolver(cache_dir=offline), {"repo": repo.repo_id})
    assert out.crash is None and out.facts is not None, out
    assert out.facts["license"] is None and "README.md metadata" in out.facts["card_error"]
    assert out.plan == "LicenseDenied"  # the default policy: unknown licences are denied
    facts = FactsResolver(cache_dir=offline).resolve(repo.repo_id)
    warn = LicensePolicy(metadata=ObjectMeta(name="w"), spec=LicensePolicySpec(
        unknown_license="Warn"))
    (reason,) = [r for r in decide(facts, warn).reasons if r.rule == "unknownLicense"]
    assert "README.md metadata (front matter) is not readable YAML" in reason.message


def test_out_of_range_shapes_are_unknown_not_sized_with(offline: Path) -> None:
    """A negative or absurd config.json number is unknown (a negative layer count made any model
    'fit'); a base_model that is not a repo id is not fetched (HFValidationError was a crash)."""
    from kubellm.modelinfo import FactsResolver

    config = {**_json_copy(TEMPLATE.config), "num_hidden_layers": -28, "hidden_size": 10**30,
              "num_attention_heads": True, "vocab_size": "152064", "max_position_embeddings": 0}
    card = {**_json_copy(TEMPLATE.card), "base_model": [{"a": 1}, 5, "not a repo!", "ok/base"]}
    repo = RawRepo("fuzz/reg-shape", card, TEMPLATE.files, config)
    write_repo(offline, repo)
    facts = FactsResolver(cache_dir=offline).resolve(repo.repo_id)
    arch = facts.architecture
    assert arch is not None
    assert (arch.num_hidden_layers, arch.hidden_size, arch.num_attention_heads,
            arch.vocab_size, arch.max_position_embeddings) == (None, None, None, None, None)
    assert [b.repo for b in facts.base_models] == ["ok/base"]
