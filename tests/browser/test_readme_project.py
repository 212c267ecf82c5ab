"""The README's "Install" and "Using it in a project", executed as written, in a real browser.

The wheel built from this checkout is installed alone into a fresh virtualenv, then every
block of those two sections runs in order, in an empty directory:

- ```sh blocks: each line is a command for bash, in the current directory (a ``cd`` carries
  over). ``pip install django-pgevents`` installs the built wheel instead of the index's copy:
  this checkout is what is tested. Lines that run a server (``runlisten``, ``runserver``,
  ``daphne``) start in the background, on a free port instead of 8000; then the page is
  checked in Chromium (static ``pgevents.js`` served, indicator ``live``, the README's SQL
  ``INSERT`` shows up without ``card_token``) and the servers are stopped.
- ```python and ```django blocks start with a comment naming a file and what to do with it:
  "add at the end", "replace its contents" or "new file".
- The ```sql block is the write the check makes, from a separate connection (as ``psql``).

Services come the way the settings block reads them: PostgreSQL through libpq's ``PG*``
variables (a database of its own) and ``REDIS_URL`` (a private Redis). Nothing else of this
checkout is on the project's path. pip's cache makes the install take seconds after the
first run; a clean machine needs only the package index.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import BrowserContext, expect

from tests.faults import PrivateRedis
from tests.support import ROOT, Process, drop_database, free_port, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.package]

SECTIONS = ("Install", "Using it in a project")
FILE_HEADER = re.compile(r"^(?:#|\{#) (?P<path>\S+) — (?P<how>add at the end|replace its contents|new file)(?: #\})?$")
SERVER = re.compile(r"^(python manage\.py (runlisten|runserver)|daphne)\b")


@dataclass(frozen=True)
class Block:
    lang: str
    text: str


def readme_blocks() -> list[Block]:
    """The fenced blocks of the tested sections, in order (### subsections included)."""
    text = (ROOT / "README.md").read_text()
    blocks: list[Block] = []
    for title in SECTIONS:
        section = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
        blocks += [Block(m[1], m[2]) for m in re.finditer(r"^```(\w+)\n(.*?)^```$", section, re.S | re.M)]
    return blocks


def test_every_block_of_the_tested_sections_is_one_the_test_runs() -> None:
    blocks = readme_blocks()
    assert {b.lang for b in blocks} <= {"sh", "python", "django", "sql"}
    for block in blocks:
        if block.lang in ("python", "django"):
            assert FILE_HEADER.match(block.text.splitlines()[0]), block.text.splitlines()[0]
    assert [b.lang for b in blocks].count("sql") == 1
    assert blocks[0] == Block("sh", "pip install django-pgevents\n")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel, built as a release would be (``python -m build``)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    return out


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Path:
    (found,) = dist.glob("django_pgevents-*.whl")
    return found


def test_the_distribution_carries_what_the_app_needs(dist: Path, wheel: Path) -> None:
    import tarfile
    import zipfile

    import pgevents

    needed = {
        "pgevents/py.typed",
        *(f"pgevents/static/pgevents/{name}.js" for name in ("pgevents", "logic", "client", "fetcher", "regions")),
        "pgevents/templates/admin/pgevents/status.html",
        "pgevents/templates/admin/pgevents/watch/change_list.html",
        *(f"pgevents/{p.relative_to(ROOT / 'pgevents')}" for p in (ROOT / "pgevents" / "migrations").glob("0*.py")),
        *(f"pgevents/{p.relative_to(ROOT / 'pgevents')}" for p in (ROOT / "pgevents" / "migrations").glob("sql/*.sql")),
        "pgevents/testing/__init__.py",
    }
    version = pgevents.__version__
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"django_pgevents-{version}.dist-info/METADATA").decode()
    assert needed <= names, needed - names
    assert f"django_pgevents-{version}.dist-info/licenses/LICENSE" in names
    assert not any(n.startswith(("tests/", "demo_project/", "bench/")) for n in names)
    requires = {line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")}
    for dependency in (
        "Django<6,>=4.2",
        "channels<5,>=4.3",
        "channels-redis<4.4,>=4.3",
        "daphne<5,>=4.2",
        "twisted<27,>=24.3",
        "autobahn<27,>=24.4",
    ):
        assert dependency in requires, requires
    assert any(r.startswith("psycopg[binary]") for r in requires)
    assert 'prometheus-client>=0.20; extra == "metrics"' in requires
    for django in ("4.2", "5.1", "5.2"):
        assert f"Classifier: Framework :: Django :: {django}" in metadata
    assert "Requires-Python: >=3.11" in metadata and "License-Expression: MIT" in metadata

    (sdist,) = dist.glob("django_pgevents-*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert needed | {"README.md", "CHANGELOG.md", "LICENSE", "pyproject.toml"} <= members


@pytest.fixture
def services(db_url: str) -> Iterator[dict[str, str]]:
    """An empty database and a private Redis, named the way the README's settings read them."""
    base, _, name = db_url.rpartition("/")
    database = f"{name}_readme"[:63]
    admin = base + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{database}"')
    redis = PrivateRedis()
    info = psycopg.conninfo.conninfo_to_dict(db_url)
    yield {
        "PGHOST": str(info.get("host") or "127.0.0.1"),
        "PGPORT": str(info.get("port") or "5432"),
        "PGUSER": str(info.get("user") or "postgres"),
        "PGDATABASE": database,
        "REDIS_URL": redis.url,
    }
    redis.stop()
    drop_database(f"{base}/{database}")


class Walkthrough:
    """Runs the README's blocks one after the other, as a reader would."""

    def __init__(self, home: Path, wheel: Path, services: dict[str, str], context: BrowserContext) -> None:
        self.cwd = home / "work"
        self.cwd.mkdir()
        self.venv = home / "venv"
        self.wheel = wheel
        self.context = context
        self.logs = home / "logs"
        self.logs.mkdir()
        keep = {
            "HOME",
            "LANG",
            "LC_ALL",
            "TMPDIR",
            "PIP_CACHE_DIR",
            "PIP_FIND_LINKS",
            "PIP_CERT",
            "PIP_DEFAULT_TIMEOUT",
        }
        self.env = {k: v for k, v in os.environ.items() if k in keep}
        self.env.update(services)
        self.env.update(
            {
                "PATH": f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
                "VIRTUAL_ENV": str(self.venv),
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.sql = next(b.text for b in readme_blocks() if b.lang == "sql")
        self.checked: list[str] = []

    def run(self, blocks: list[Block]) -> None:
        subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True, timeout=120)
        for block in blocks:
            if block.lang == "sh":
                self._shell(block.text)
            elif block.lang in ("python", "django"):
                self._write(block.text)

    def _write(self, text: str) -> None:
        match = FILE_HEADER.match(text.splitlines()[0])
        assert match is not None
        path = self.cwd / match["path"]
        if match["how"] == "add at the end":
            assert path.exists(), f"{path} should exist before the README adds to it"
            path.write_text(path.read_text() + "\n\n" + text)
        elif match["how"] == "replace its contents":
            assert path.exists(), f"{path} should exist before the README replaces it"
            path.write_text(text)
        else:
            assert not path.exists(), f"{path} should be new"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    def _shell(self, text: str) -> None:
        lines = [line for line in text.splitlines() if line.strip()]
        servers = [line for line in lines if SERVER.match(line)]
        commands = [line for line in lines if not SERVER.match(line)]
        if commands:
            self._commands(commands)
        if servers:
            self._serve(servers)

    def _commands(self, commands: list[str]) -> None:
        script = ["set -e", *(self._pip(c) for c in commands), 'pwd > "$PGEVENTS_README_CWD"']
        cwd_file = self.logs / "cwd"
        result = subprocess.run(
            ["bash", "-c", "\n".join(script)],
            cwd=self.cwd,
            env={**self.env, "PGEVENTS_README_CWD": str(cwd_file)},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, f"{commands} failed:\n{result.stdout}\n{result.stderr}"
        self.cwd = Path(cwd_file.read_text().strip())

    def _pip(self, command: str) -> str:
        """``pip install django-pgevents[...]``: this checkout's wheel instead of the index's release."""
        return re.sub(r"(?<=pip install )django-pgevents(\[\w+\])?", lambda m: f"'{self.wheel}{m[1] or ''}'", command)

    def _serve(self, servers: list[str]) -> None:
        port = free_port()
        procs = {
            line: Process(
                f"readme-{line.split()[0]}-{line.split()[-1].replace('/', '_').replace(':', '_')}",
                ["bash", "-c", f"cd '{self.cwd}' && exec {line.replace('8000', str(port))}"],
                self.env,
                self.logs,
            )
            for line in servers
        }
        try:
            self._check(port, procs)
        finally:
            for proc in procs.values():
                proc.stop()
        self.checked.append(next(line for line in servers if "runlisten" not in line))

    def _check(self, port: int, procs: dict[str, Process]) -> None:
        listener = next(p for line, p in procs.items() if "runlisten" in line)
        server = next(p for line, p in procs.items() if "runlisten" not in line)
        wait_until(
            lambda: "runlisten ready, role active" in listener.output() or not listener.alive(),
            60,
            what="runlisten to be ready",
        )
        assert listener.alive(), listener.output()

        def serving() -> bool:
            assert server.alive(), server.output()
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_until(serving, 60, what=f"the server on port {port}")
        base = f"http://127.0.0.1:{port}"
        page = self.context.new_page()
        failed: list[str] = []
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.goto(base + "/orders/")
        expect(page.locator("[data-pgevents-status]")).to_have_attribute("data-state", "live")
        page.evaluate(
            "() => { window.__rows = []; document.body.addEventListener('pgevents:orders', (e) => window.__rows.push(e.detail.row)); }"
        )
        rows = page.locator("tbody > tr", has_text="Ada")
        before = rows.count()
        with psycopg.connect(autocommit=True, **self._conninfo()) as conn:  # as psql would
            conn.execute(self.sql)
        expect(rows).to_have_count(before + 1)
        expect(rows.last).to_contain_text("12.50")
        inserted = page.evaluate("window.__rows")[-1]
        assert inserted["customer"] == "Ada" and "card_token" not in inserted, inserted
        assert page.request.get(base + "/static/pgevents/pgevents.js").ok  # what the page loaded
        page.close()
        assert [f for f in failed if not f.endswith("/favicon.ico")] == []
        assert "Traceback" not in listener.output() + server.output(), listener.output() + server.output()

    def _conninfo(self) -> dict[str, str]:
        keys = {"PGHOST": "host", "PGPORT": "port", "PGUSER": "user", "PGDATABASE": "dbname"}
        return {name: self.env[var] for var, name in keys.items()}


def test_install_and_using_it_in_a_project_as_written(
    tmp_path: Path, wheel: Path, services: dict[str, str], context: BrowserContext
) -> None:
    walk = Walkthrough(tmp_path, wheel, services, context)
    walk.run(readme_blocks())
    assert walk.checked == [  # development, then production: both served the page, live
        "python manage.py runserver 127.0.0.1:8000",
        "daphne -e tcp:port=8000:interface=127.0.0.1:backlog=4096 myproject.asgi:application",
    ]
