"""A real Hugging Face mirror server for tests: olah (PyPI ``olah``) offline, over local git repos.

olah serves ``<mirrors-path>/models/<org>/<name>`` git working trees as Hub repos (model info,
trees, ``resolve``) when ``[accessibility] offline = true``; commits are the revisions. What it
does not do, so the fixture Hub server stays for those cases: gating (every repo is public),
an unknown sha answers 500 (not 404 RevisionNotFound), and files are read whole into memory.

:func:`install` puts olah into its own venv under ``${XDG_CACHE_HOME:-~/.cache}/kubellm/tools/``
(once per version; PyPI), :func:`git_repo` writes a :class:`FakeRepo`'s files as one commit
with a fixed author and date (so the sha is stable), :func:`serve_olah` runs the server for a
block and yields its endpoint.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hubfixtures.models import FakeRepo

OLAH = "0.5.4"
_GIT_ENV = {"GIT_AUTHOR_NAME": "kubellm", "GIT_AUTHOR_EMAIL": "e2e@kubellm.invalid",
            "GIT_COMMITTER_NAME": "kubellm", "GIT_COMMITTER_EMAIL": "e2e@kubellm.invalid",
            "GIT_AUTHOR_DATE": "2024-09-25T14:34:58Z", "GIT_COMMITTER_DATE": "2024-09-25T14:34:58Z"}


def venv() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kubellm" / "tools" / f"olah-{OLAH}"


def install() -> Path:
    """olah's console script, installed into its own venv once (PyPI)."""
    cli = venv() / "bin" / "olah-cli"
    marker = venv() / ".kubellm-installed"
    if marker.exists() and cli.exists():
        return cli
    subprocess.run([sys.executable, "-m", "venv", str(venv())], check=True, timeout=300)
    subprocess.run([str(venv() / "bin" / "pip"), "install", "-q", f"olah=={OLAH}"],
                   check=True, timeout=1200)
    marker.write_text(OLAH + "\n")
    return cli


def git_repo(mirrors: Path, repo: FakeRepo) -> str:
    """``repo``'s files as one commit under ``mirrors/models/<org>/<name>``; returns its sha."""
    org, name = repo.repo_id.split("/")
    path = mirrors / "models" / org / name
    path.mkdir(parents=True, exist_ok=True)
    for f in repo.all_files():
        target = path / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f.read())
    env = {**os.environ, **_GIT_ENV}

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=path, env=env, check=True, timeout=60,
                              capture_output=True, text=True).stdout.strip()

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", f"{repo.repo_id}")
    return git("rev-parse", "HEAD")


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve_olah(mirrors: Path, work: Path, host: str = "127.0.0.1") -> Iterator[str]:
    """Run olah offline over ``mirrors`` for the block; yields ``http://host:port``."""
    cli = install()
    port = _free_port(host)
    work.mkdir(parents=True, exist_ok=True)
    config = work / "olah.toml"
    config.write_text(
        "[basic]\n"
        f'host = "{host}"\nport = {port}\n'
        f'repos-path = "{work / "repos"}"\n'
        'mirror-scheme = "http"\n'
        f'mirror-netloc = "{host}:{port}"\nmirror-lfs-netloc = "{host}:{port}"\n'
        f'mirrors-path = ["{mirrors}"]\n'
        "[accessibility]\noffline = true\n"
    )
    log = (work / "olah.log").open("ab")
    proc = subprocess.Popen([str(cli), "--config", str(config)], cwd=work, stdout=log,
                            stderr=subprocess.STDOUT)
    endpoint = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"olah exited with {proc.returncode}: see {work / 'olah.log'}")
            try:  # any HTTP answer will do (its index page errors with some jinja2 versions)
                urllib.request.urlopen(endpoint + "/api/whoami-v2", timeout=2).close()
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"olah did not answer: see {work / 'olah.log'}") from None
                time.sleep(0.5)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
