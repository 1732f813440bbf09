"""Human output of ``kubellm plan``: one panel per deployment with the licence decision, the
memory breakdown and the objects (rendered with rich, which also handles plain terminals)."""

from __future__ import annotations

from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

GREEN, RED, YELLOW = "green", "red", "yellow"
MAX_CLAIM_LINES = 5  # of the card's model-index claims; -o json has all


def render_text(reports: list[dict[str, Any]], inventory: Any, *, show_objects: bool) -> None:
    console = Console(highlight=False, soft_wrap=True)
    source = getattr(inventory, "source", "?")
    for report in reports:
        _one(console, report, source, show_objects)


def _one(console: Console, r: dict[str, Any], inv_source: str, show_objects: bool) -> None:
    model = r["model"]
    verdict = "DEPLOYABLE" if r["deployable"] else f"REFUSED ({r['refusal']['reason']})"
    colour = GREEN if r["deployable"] else RED
    console.rule(f"[bold]{r['namespace']}/{r['name']}[/bold]  [{colour}]{verdict}[/{colour}]")
    rev = model.get("sha") or model.get("revision")
    src = model.get("source", "?")
    declared = model.get("declared") or []
    console.print(
        escape(
            f"model    {model['repo']} @ {rev}  (facts from {src}"
            + (f"; declared: {', '.join(declared)}" if declared else "")
            + ")"
        )
    )
    claims = model.get("claims") or []
    for claim in claims[:MAX_CLAIM_LINES]:
        console.print(escape(
            f"claims   {claim['benchmark']}: {claim['metric']} {claim['value']:g}"
            + (f"  ({claim['source']})" if claim.get("source") else "")
            + ("  verified" if claim.get("verified") else "")))
    if len(claims) > MAX_CLAIM_LINES:
        console.print(f"claims   ... {len(claims) - MAX_CLAIM_LINES} more (-o json)")
    lic = r.get("license")
    if lic:
        lc = GREEN if lic["decision"] == "Allowed" else YELLOW if lic["allowed"] else RED
        console.print(
            escape(
                f"licence  {lic.get('id') or '?'}"
                + (f" ({lic['name']})" if lic.get("name") else "")
                + f"  class={lic['class']}  openness={lic.get('openness')}"
            )
            + f"  -> [{lc}]{lic['decision']}[/{lc}]"
            + (f"  by policy {lic['policy']}" if lic.get("policy") else "  (no policy: defaults)")
        )
        for reason in lic.get("reasons", []):
            console.print(escape(f"  - [{reason['effect']}] {reason['rule']}: {reason['message']}"))
        for ob in lic.get("obligations", []):
            console.print(escape(f"  obligation: {ob}"))
    s = r.get("sizing")
    if s:
        table = Table(title=f"GPU sizing (inventory: {inv_source})", title_justify="left")
        for col in ("per GPU", "GiB"):
            table.add_column(col, justify="right" if col == "GiB" else "left")
        for label, key in (
            ("weights", "weightsGiB"),
            ("KV cache", "kvCacheGiB"),
            ("overhead", "overheadGiB"),
            ("total needed", "perGpuGiB"),
            ("usable on GPU", "gpuMemoryGiB"),
        ):
            value = s.get(key)
            table.add_row(label, "-" if value is None else f"{value:.2f}")
        console.print(table)
        if s.get("fits"):
            console.print(
                f"gpus     {s.get('gpusPerReplica')} x {s.get('gpuType')} per replica"
                f"  (tp={s.get('tensorParallelSize')}, pp={s.get('pipelineParallelSize')})"
                + _across(s.get("nodesPerReplica"))
                + f"  maxModelLen={s.get('maxModelLen')}  concurrency={s.get('concurrency')}"
                f"  quantization={s.get('quantization')}  runtime={r.get('runtime')}"
            )
        if s.get("message"):
            console.print(escape(f"sizing   {s['message']}"))
    if r.get("refusal"):
        console.print(f"[{RED}]refused[/{RED}]  " + escape(r["refusal"]["message"]))
    for w in r.get("warnings", []):
        console.print(f"[{YELLOW}]warning[/{YELLOW}]  " + escape(w))
    objs = r.get("objects") or []
    if objs:
        console.print("objects  " + ", ".join(f"{o['kind']}/{o['metadata']['name']}" for o in objs))
        if show_objects:
            console.print(yaml.safe_dump_all(objs, sort_keys=False), markup=False)
    console.print()


def _across(nodes: Any) -> str:
    """`` across N nodes (LeaderWorkerSet)`` for a replica spanning several nodes, else ''."""
    if isinstance(nodes, int) and nodes > 1:
        return f"  across {nodes} nodes (LeaderWorkerSet)"
    return ""
