"""Start, watch and stop the sandbox's own processes, identified by pid AND start time.

A recorded pid is only signalled when ``/proc/<pid>/stat`` still shows the start time we
recorded, so a pid the kernel reused for someone else's process is never touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kubellm.sandbox.errors import SandboxError


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    start_time: str | None
    log: str
    argv: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["argv"] = list(self.argv)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessRecord:
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            start_time=data.get("start_time"),
            log=str(data["log"]),
            argv=tuple(data.get("argv", ())),
        )


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces; everything after the last ')' is space separated.
    return text[text.rfind(")") + 2 :].split()


def start_time(pid: int) -> str | None:
    """Kernel start time of ``pid`` (clock ticks since boot), None without /proc."""
    fields = _stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else None


def is_running(record: ProcessRecord) -> bool:
    """True while the recorded process (same pid, same start time) is alive and not a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(record.pid, os.WNOHANG)  # reap it if it is our own exited child
    fields = _stat_fields(record.pid)
    if fields is None:
        if Path("/proc/self/stat").exists():
            return False
        try:  # no /proc (not Linux): fall back to "some process has this pid"
            os.kill(record.pid, 0)
        except OSError:
            return False
        return True
    if fields[0] in ("Z", "X"):
        return False
    return record.start_time is None or fields[19] == record.start_time


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` in bytes (0 when unknown)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def spawn(
    name: str, argv: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None
) -> ProcessRecord:
    """Start ``argv`` detached (own session), stdout+stderr appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
                env=env,
            )
        except OSError as exc:
            raise SandboxError(f"{name}: cannot start {argv[0]}: {exc}") from exc
    return ProcessRecord(name, proc.pid, start_time(proc.pid), str(log), tuple(argv))


def log_tail(path: str | Path, lines: int = 25) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(empty log)"


def stop(record: ProcessRecord, timeout: float = 10.0) -> None:
    """SIGTERM the process group we started, then SIGKILL after ``timeout``; never another pid."""
    if not is_running(record):
        return
    _signal(record, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running(record):
            return
        time.sleep(0.1)
    _signal(record, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and is_running(record):
        time.sleep(0.1)


def _signal(record: ProcessRecord, sig: signal.Signals) -> None:
    if not is_running(record):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        # We started it with start_new_session, so its pgid is its pid: children die with it.
        if os.getpgid(record.pid) == record.pid:
            os.killpg(record.pid, sig)
        else:  # pragma: no cover - only if someone changed its process group
            os.kill(record.pid, sig)
