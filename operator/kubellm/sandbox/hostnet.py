"""The host side of the real node: the bridge, iptables, sysctls, mounts and cgroups it changes.

Every change set-up makes is either recorded (the sysctl values it found, in the machine-wide
:data:`RECORD` file) or derived from data in :mod:`kubellm.sandbox.nodeconfig` (the bridge, our
own chains), so :func:`teardown` can undo it even when the sandbox directory is already gone:

- the bridge :data:`nodeconfig.BRIDGE` with the node IP; forwarding is turned on for packets
  arriving on it only (``net.ipv4.conf.<bridge>.forwarding``), not for the host;
- our ``KUBELLM-SANDBOX-*`` chains (:func:`nodefirewall.iptables_rules`);
- the ``KUBE-*`` / ``CNI-*`` chains kubelet, kube-proxy and the portmap plugin make: set-up refuses
  to start while any exists (another Kubernetes on this host), so tear-down removes them all;
- the kernel tunables kubelet sets (:data:`nodeconfig.KERNEL_SYSCTLS`): restored to what they were;
- mounts under the node directory (kubelet's bind mount of its root dir, pod volumes, network
  namespaces, container root filesystems), unmounted deepest first;
- the cgroups under ``/kubellm-sandbox`` in every v1 hierarchy: their processes are killed (they
  are the node's containers) and the directories removed.

One real node per machine: :data:`RECORD` names the sandbox that owns it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from kubellm.sandbox import nodeconfig, nodefirewall
from kubellm.sandbox.errors import SandboxError
from kubellm.sandbox.install import Progress

RECORD = Path("/run/kubellm-sandbox-real-node.json")
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_NAME = "kubellm-sandbox"
_TABLES = ("filter", "nat", "mangle", "raw")


def _run(cmd: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxError(f"{' '.join(cmd)}: {exc}") from exc
    if check and proc.returncode != 0:
        raise SandboxError(f"{shlex.join(cmd)} failed: {(proc.stderr or proc.stdout).strip()}")
    return proc


def iptables(args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run(["iptables", "-w", "5", *args], check=check)


# ---- ownership --------------------------------------------------------------------------------
def read_record() -> dict[str, Any] | None:
    try:
        data = json.loads(RECORD.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_record(data: dict[str, Any]) -> None:
    tmp = RECORD.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, RECORD)


def preflight() -> None:
    """Refuse early, with the reason, when this host cannot take a real node now."""
    if os.geteuid() != 0:
        raise SandboxError("the real node needs root (bridge, iptables, mounts, cgroups)")
    if not (CGROUP_ROOT / "memory" / "memory.limit_in_bytes").exists() and not (
        CGROUP_ROOT / "cgroup.controllers"
    ).exists():
        raise SandboxError(f"no cgroup filesystem under {CGROUP_ROOT}")
    if Path(f"/sys/class/net/{nodeconfig.BRIDGE}").exists():
        raise SandboxError(
            f"network interface {nodeconfig.BRIDGE} exists already: another real node runs "
            "here (kubellm sandbox down), or delete it: ip link delete " + nodeconfig.BRIDGE
        )
    foreign = foreign_chains()
    if foreign:
        raise SandboxError(
            "iptables already has Kubernetes chains ("
            + ", ".join(f"{t}/{c}" for t, c in foreign[:5])
            + "): another Kubernetes runs on this host; the real node would remove them"
        )
    route = _run(["ip", "-4", "route", "show", "to", "match", nodeconfig.NODE_IP])
    for line in route.stdout.splitlines():
        if not line.startswith("default"):
            raise SandboxError(
                f"{nodeconfig.POD_CIDR} overlaps a route of this host ({line.strip()})"
            )


# ---- set-up and tear-down -------------------------------------------------------------------
def read_sysctl(name: str) -> str | None:
    try:
        return (Path("/proc/sys") / name).read_text().strip()
    except OSError:
        return None


def write_sysctl(name: str, value: str) -> None:
    with contextlib.suppress(OSError):
        (Path("/proc/sys") / name).write_text(value + "\n")


def setup(state_dir: Path, progress: Progress) -> None:
    """Record ownership and sysctls, make the bridge and our chains. Undone by :func:`teardown`."""
    preflight()
    sysctls = {n: v for n in nodeconfig.KERNEL_SYSCTLS if (v := read_sysctl(n)) is not None}
    _write_record({"state_dir": str(state_dir), "sysctls": sysctls, "created": time.time()})
    progress(f"creating bridge {nodeconfig.BRIDGE} ({nodeconfig.NODE_IP}) and iptables chains")
    br = nodeconfig.BRIDGE
    _run(["ip", "link", "add", br, "type", "bridge"])
    _run(["ip", "addr", "add", f"{nodeconfig.NODE_IP}/24", "dev", br])
    _run(["ip", "link", "set", br, "up"])
    write_sysctl(f"net/ipv4/conf/{br}/forwarding", "1")
    for args in nodefirewall.iptables_setup(nodefirewall.iptables_rules()):
        iptables(args)
    make_cgroup_root()


def make_cgroup_root() -> None:
    """``/<CGROUP_NAME>`` in every v1 hierarchy: the kubelet's ``cgroupRoot`` must exist."""
    for hierarchy in CGROUP_ROOT.iterdir() if CGROUP_ROOT.exists() else ():
        if not (hierarchy / "cgroup.procs").exists():
            continue
        base = hierarchy / CGROUP_NAME
        base.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):  # a new cpuset starts empty
            if (base / name).exists() and not (base / name).read_text().strip():
                (base / name).write_text((hierarchy / name).read_text())


def foreign_chains() -> list[tuple[str, str]]:
    """(table, chain) of every ``KUBE-*``/``CNI-*`` chain now in iptables."""
    found: list[tuple[str, str]] = []
    for table in _TABLES:
        proc = iptables(["-t", table, "-S"], check=False)
        for line in proc.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "-N" and parts[1].startswith(
                nodefirewall.FOREIGN_CHAIN_PREFIXES
            ):
                found.append((table, parts[1]))
    return found


def sweep_chains(prefixes: tuple[str, ...]) -> None:
    """Delete every jump to, flush and delete every chain named with ``prefixes``."""
    for table in _TABLES:
        lines = iptables(["-t", table, "-S"], check=False).stdout.splitlines()
        chains = [p[1] for p in (ln.split() for ln in lines) if p[:1] == ["-N"]]
        ours = [c for c in chains if c.startswith(prefixes)]
        if not ours:
            continue
        for line in lines:
            parts = shlex.split(line)
            if parts[:1] == ["-A"] and parts[1] not in ours and any(
                p in ours for p in parts[2:]
            ):
                iptables(["-t", table, "-D", *parts[1:]], check=False)
        for chain in ours:
            iptables(["-t", table, "-F", chain], check=False)
        for chain in ours:
            iptables(["-t", table, "-X", chain], check=False)


def kill_cgroup_processes() -> int:
    """SIGKILL every process in the node's cgroups (its containers); how many were signalled."""
    pids: set[int] = set()
    for hierarchy in CGROUP_ROOT.iterdir() if CGROUP_ROOT.exists() else ():
        base = hierarchy / CGROUP_NAME
        if not base.is_dir():
            continue
        for procs in base.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(x) for x in procs.read_text().split())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def remove_cgroups() -> None:
    """rmdir the node's cgroup trees, deepest first (empty after :func:`kill_cgroup_processes`)."""
    for hierarchy in CGROUP_ROOT.iterdir() if CGROUP_ROOT.exists() else ():
        base = hierarchy / CGROUP_NAME
        if not base.is_dir():
            continue
        dirs = sorted((d for d in base.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts))
        for directory in [*dirs, base]:
            for _ in range(20):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root``, deepest first (from /proc/self/mountinfo)."""
    prefix = str(root.resolve())
    points: list[str] = []
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 4:
            point = fields[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(set(points), key=lambda p: (-p.count("/"), p))


def unmount_all(root: Path) -> None:
    """Unmount everything below ``root`` (lazily if busy), repeating for stacked mounts."""
    for _ in range(5):
        points = mounts_under(root)
        if not points:
            return
        for point in points:
            if _run(["umount", point], check=False).returncode != 0:
                _run(["umount", "-l", point], check=False)


def teardown(progress: Progress, node_root: Path | None = None) -> None:
    """Undo :func:`setup` and what the node's components added; safe to run twice."""
    record = read_record()
    killed = kill_cgroup_processes()
    if killed:
        progress(f"killed {killed} container processes of the real node")
    if node_root is None and record is not None:
        node_root = Path(record["state_dir"]) / "node"
    if node_root is not None:
        unmount_all(node_root)
    remove_cgroups()
    sweep_chains(nodefirewall.FOREIGN_CHAIN_PREFIXES)
    for args in nodefirewall.iptables_teardown(nodefirewall.iptables_rules()):
        iptables(args, check=False)
    if Path(f"/sys/class/net/{nodeconfig.BRIDGE}").exists():
        _run(["ip", "link", "delete", nodeconfig.BRIDGE], check=False)
    # veths of pods whose netns was unmounted vanish with it; any left on the bridge went above.
    if record is not None:
        for name, value in record.get("sysctls", {}).items():
            if read_sysctl(name) != value:
                write_sysctl(name, value)
    RECORD.unlink(missing_ok=True)
