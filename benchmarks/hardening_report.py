"""Report (issue 12, item 5): the hardening figures, printed as numbers (no assertions).

- fuzzing: cases generated and crashes, from running the unit fuzzers now
  (``tests/unit/test_fuzz_plan.py``: manifests through ``kubellm plan``;
  ``tests/unit/test_fuzz_hub.py``: malformed Hub metadata and misbehaving Hub answers), and the
  sandbox fuzzing (``tests/e2e/test_fuzz_sandbox.py``: documents through the apiserver and the
  operator) from its last recorded run;
- licence-gate bypass attempts tried and refused: the cases of ``tests/unit/test_guard.py``,
  run now, counted per test (the refusal tests vs the allowed-value tests);
- faults injected and survived, objects lost: ``tests/e2e/test_faults.py``'s last recorded run.

The e2e tests need the sandbox and minutes, so by default their figures are read from the
records they leave in ``${XDG_CACHE_HOME:-~/.cache}/kubellm/hardening/``; ``--run-e2e`` runs them
first (``pytest -m e2e``, a private sandbox). Usage::

    python benchmarks/hardening_report.py [--run-e2e] [--json]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
UNIT = ["tests/unit/test_fuzz_plan.py", "tests/unit/test_fuzz_hub.py", "tests/unit/test_guard.py"]
E2E = ["tests/e2e/test_faults.py", "tests/e2e/test_fuzz_sandbox.py"]
# test_guard.py tests whose every case is a bypass attempt that must be refused
REFUSAL_TESTS = ("test_refused_args", "test_refused_env",
                 "test_planner_refuses_bypass_with_nothing_created",
                 "test_the_api_refuses_the_named_flags_at_admission")
PRINTED = re.compile(r"^fuzz (?P<what>plan|hub): (?P<counts>\{.*?\}) = (?P<total>\d+) cases",
                     re.MULTILINE)


def records_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kubellm" / "hardening"


def pytest_run(paths: list[str], *extra: str) -> tuple[str, list[dict[str, Any]], float]:
    """Run pytest on ``paths``: (stdout, one dict per test case from JUnit XML, seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        env = {**os.environ, "KUBELLM_SKIP_HELM": os.environ.get("KUBELLM_SKIP_HELM", "1")}
        began = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", *paths, "-s", "-q", "-p", "no:cacheprovider",
             f"--junitxml={xml}", *extra],
            cwd=ROOT, capture_output=True, text=True, env=env, check=False)
        seconds = time.monotonic() - began
        cases = []
        if xml.exists():
            for case in ET.parse(xml).getroot().iter("testcase"):
                outcome = "passed"
                for tag in ("failure", "error", "skipped"):
                    if case.find(tag) is not None:
                        outcome = {"failure": "failed"}.get(tag, tag)
                cases.append({"file": case.get("classname", ""), "name": case.get("name", ""),
                              "outcome": outcome})
    return proc.stdout + proc.stderr, cases, seconds


def fuzz_figures(out: str, cases: list[dict[str, Any]]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for m in PRINTED.finditer(out):
        figures[m["what"]] = {"cases": int(m["total"]), "by_test": ast.literal_eval(m["counts"])}
    for what, module in (("plan", "test_fuzz_plan"), ("hub", "test_fuzz_hub")):
        mine = [c for c in cases if c["file"].endswith(module)]
        entry = figures.setdefault(what, {"cases": None})
        # a crash fails its hypothesis test (the contract is asserted per case)
        entry["crashes"] = sum(1 for c in mine if c["outcome"] == "failed")
        entry["tests"] = len(mine)
    return figures


def guard_figures(cases: list[dict[str, Any]]) -> dict[str, Any]:
    mine = [c for c in cases if c["file"].endswith("test_guard")]
    refusal = [c for c in mine if c["name"].split("[")[0] in REFUSAL_TESTS
               or (c["name"].startswith("test_image[") and c["name"].endswith("False]"))]
    return {"cases": len(mine), "bypass_attempts": len(refusal),
            "refused": sum(1 for c in refusal if c["outcome"] == "passed"),
            "not_refused": sum(1 for c in refusal if c["outcome"] == "failed"),
            "allowed_values_checked": len(mine) - len(refusal)}


def read_record(name: str) -> dict[str, Any] | None:
    path = records_dir() / f"{name}.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    data["_path"] = str(path)
    return data


def age(record: dict[str, Any]) -> str:
    seconds = time.time() - float(record.get("recorded_at", 0))
    return f"{seconds / 3600:.1f} h ago" if seconds > 3600 else f"{seconds / 60:.0f} min ago"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-e2e", action="store_true",
                        help="run the e2e fault and sandbox-fuzz tests first (minutes)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    out, cases, unit_seconds = pytest_run(UNIT, "-m", "fuzz or not fuzz")
    fuzz = fuzz_figures(out, cases)
    guard = guard_figures(cases)
    e2e_seconds = None
    if args.run_e2e:
        _, _, e2e_seconds = pytest_run(E2E, "-m", "e2e")
    faults, sandbox = read_record("faults"), read_record("fuzz_sandbox")
    figures = {"fuzz": fuzz, "fuzz_sandbox": sandbox, "guard": guard, "faults": faults,
               "unit_seconds": round(unit_seconds, 1),
               "e2e_seconds": None if e2e_seconds is None else round(e2e_seconds, 1)}
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
        return 0

    print("=== kubellm hardening report (issue 12) ===")
    print(f"(unit fuzzers and guard cases run now: {unit_seconds:.0f} s)")
    print("\nFuzzing: cases generated, crashes")
    for what, label in (("plan", "kubellm plan (manifests)"), ("hub", "Hub metadata + faults")):
        f = fuzz.get(what, {})
        print(f"  {label:<34} {f.get('cases')!s:>6} cases   {f.get('crashes')!s:>3} crashes"
              f"   {f.get('by_test', '')}")
    if sandbox:
        crashes = sandbox.get("operator_crashes", 0) + sandbox.get("operator_tracebacks", 0)
        refused = sum(sandbox.get("refused", {}).values())
        accepted = sandbox.get("accepted", {})
        print(f"  {'apiserver + operator (sandbox)':<34} {sandbox.get('posted')!s:>6} cases   "
              f"{crashes:>3} crashes   (recorded {age(sandbox)})")
        print(f"    refused by the apiserver: {refused} {sandbox.get('refused')}; accepted: "
              f"{accepted}; 5xx: {sandbox.get('server_errors')}")
        print(f"    status with a reason: {sandbox.get('status_seconds')}; reasons "
              f"{sandbox.get('reasons')}")
        print(f"    idle: {sandbox.get('idle')}; half-created objects: "
              f"{sandbox.get('half_created')}")
    else:
        print("  apiserver + operator (sandbox)     not recorded: pytest -m e2e "
              "tests/e2e/test_fuzz_sandbox.py (or --run-e2e)")
    total = sum((fuzz.get(w, {}).get("cases") or 0) for w in ("plan", "hub")) + (
        (sandbox or {}).get("posted") or 0)
    print(f"  {'total':<34} {total:>6} cases")

    print("\nLicence gate (tests/unit/test_guard.py)")
    print(f"  bypass attempts tried {guard['bypass_attempts']}, refused {guard['refused']}, "
          f"not refused {guard['not_refused']}; allowed values checked "
          f"{guard['allowed_values_checked']} (of {guard['cases']} cases)")

    print("\nFaults during a rollout (tests/e2e/test_faults.py)")
    if faults:
        print(f"  {faults.get('n')} LLMDeployments + later phases on {faults.get('pool')}, "
              f"{faults.get('total_seconds')} s (recorded {age(faults)})")
        for phase, p in faults.get("phases", {}).items():
            print(f"  {phase:<30} injected {p['faults']:>3}  survived {p['survived']:>3}  "
                  f"converged {p.get('converged_seconds', '-')!s:>5} s  "
                  f"ready {p.get('ready', '-')}/{p.get('llmdeployments', '-')}  "
                  f"lost {p['lost']}")
        print(f"  faults injected {faults.get('faults_injected')}, survived "
              f"{faults.get('faults_survived')}; objects lost {faults.get('objects_lost')}; "
              f"restarts: apiserver {faults.get('apiserver_restart_seconds')} s, etcd "
              f"{faults.get('etcd_restart_seconds')} s; tracebacks in the operator log "
              f"{faults.get('operator_log_tracebacks')}")
    else:
        print("  not recorded: pytest -m e2e tests/e2e/test_faults.py (or --run-e2e)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
