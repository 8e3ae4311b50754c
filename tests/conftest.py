"""Shared test set-up: offline mode, the shared data folder, one embedder, a real PostgreSQL server for the
store tests that run on both databases, a local Ray cluster, skipping GPU tests without CUDA."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from pipeline.embedding import SentenceTransformerEmbedder
from pipeline.config import IngestSettings, Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
os.environ.setdefault("DO_NOT_TRACK", "true")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SCULPTRAG_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data; a test that needs it fails with a clear message when it is missing."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA}; set SCULPTRAG_SHARED_DATA to its path")
    return SHARED_DATA


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    """The bundled MiniLM embedder, loaded once for the whole run."""
    e = SentenceTransformerEmbedder()
    e.warm_up()
    return e


# ---------------------------------------------------------------- a real PostgreSQL server
def find_bindir() -> Path | None:
    """The folder of initdb/postgres: `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and (Path(out.stdout.strip()) / "postgres").exists():
            return Path(out.stdout.strip())
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, bindir: Path, folder: Path) -> None:
        self.bindir, self.folder = bindir, folder
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None

    def _as_owner(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    @classmethod
    def start(cls) -> "PostgresServer":
        bindir = find_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (no initdb/postgres); `apt-get install postgresql`")
        folder = Path(tempfile.mkdtemp(prefix="sculptrag-pg-"))
        server = cls(bindir, folder)
        data, sock = folder / "data", folder / "sock"
        sock.mkdir()
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
            shutil.chown(sock, "postgres", "postgres")
        init = subprocess.run(server._as_owner([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                                                "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]),
                              capture_output=True, text=True)
        if init.returncode:
            raise RuntimeError(f"initdb failed: {init.stderr[-2000:]}")
        server.proc = subprocess.Popen(
            server._as_owner([str(bindir / "postgres"), "-D", str(data), "-p", str(server.port),
                              "-c", "listen_addresses=127.0.0.1", "-k", str(sock), "-c", "fsync=off",
                              "-c", "max_connections=200"]),
            stdout=subprocess.DEVNULL, stderr=open(folder / "server.log", "wb"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {(folder / 'server.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
                    pass
                import psycopg

                psycopg.connect(server.dsn("postgres"), autocommit=True).close()
                return server
            except OSError:
                time.sleep(0.1)
            except Exception:  # noqa: BLE001 - "the database system is starting up"
                time.sleep(0.1)
        server.stop()
        raise RuntimeError("postgres did not start in 30 s")

    def dsn(self, db: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def database(self) -> str:
        """A fresh empty database; its SQLAlchemy URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stop the server and delete its folder."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server from the system's binaries, for the whole run (PostgresServer above)."""
    server = PostgresServer.start()
    yield server
    server.stop()


@pytest.fixture
def store_database(request) -> str | None:
    """The SQL database of a test's store: None, the default SQLite file in the store folder. A module runs
    its tests on both with `pytestmark = pytest.mark.parametrize("store_database", ["sqlite", "postgres"],
    indirect=True)`; "postgres" is then a fresh database on a real server."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return None
    return request.getfixturevalue("postgres_server").database()


@pytest.fixture
def make_settings(tmp_path: Path, store_database):
    """Settings for a fresh store under tmp_path (on `store_database`), with ingest limits overridden as given."""

    def make(**ingest) -> Settings:
        return Settings(store_dir=tmp_path / "store", database_url=store_database, ingest=IngestSettings(**ingest))

    return make


# ---------------------------------------------------------------- a local Ray cluster
@pytest.fixture(scope="module")
def ray_cluster():
    """A real local Ray cluster with 2 CPUs for the module that asks for it (stopped after it, so no other test
    runs beside a Ray driver); yields the ray module. Ingests given `ray="auto"` use it as it is."""
    import ray  # a dev dependency: missing, the Ray tests fail rather than skip
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=256 * 1024 * 1024)
    yield ray
    ray.shutdown()


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true",
                     help="run the whole suite, slow tests included (clears the default -m 'not slow'; what CI runs)")


def pytest_configure(config):
    if config.getoption("full"):
        config.option.markexpr = ""  # pyproject's addopts select the quick suite with -m 'not slow'


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
