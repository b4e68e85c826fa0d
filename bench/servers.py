"""
The servers under test, each started fresh for each measurement, and what they run on.

Three servers speak the same protocol on the same address, `ws://127.0.0.1:<port>/ws/rooms/<slug>/`:

- the bare relay (bench/relay.py), the `websockets` library alone;
- the daphne floor (bench/floor.py), a minimal Channels consumer on daphne;
- the site, as it is deployed: `python -m conference.server ... conference.asgi:application`
  with DEBUG off, its own database (SQLite, or a PostgreSQL database made for the run), and with
  REDIS_URL pointing at a redis-server of the run's own for the Redis variants.

daphne gets the same flags for the floor and the site. With `taskset` and two cores or more,
every server and Redis run on core 0 and the load generator (this process) on core 1.
"""

import contextlib
import dataclasses
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

RELAY = "bare relay"
FLOOR = "daphne floor"
SITE = "site"
SITE_REDIS = "site + Redis"
# Two daphne processes of the site over one Redis, both on the server's core: every pair of the
# steady scenario has one socket on each, so each signal crosses from one process to the other.
SITE_TWO_PROCESSES = "site + Redis, 2 processes"
SITE_POSTGRES = "site + PostgreSQL"

# Flags for both daphne servers: no access log, warnings and errors only.
DAPHNE_FLAGS = ["-v", "0"]

SERVER_CORE = 0
LOAD_CORE = 1
# The bench's processes run at this nice value where allowed, ahead of other work on the machine.
PRIORITY = -10

# daphne's log lines start with the time, which would keep equal lines from being counted together.
LOG_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\s+")

# The PostgreSQL server's maintenance database, where the run's own database is made and dropped.
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"


# The cores this process may use as it starts: claim_cores() narrows its own to the load's core,
# and whether the servers can have another one must not change with that.
STARTING_CORES = frozenset(os.sched_getaffinity(0))


def can_pin() -> bool:
    return shutil.which("taskset") is not None and {SERVER_CORE, LOAD_CORE} <= STARTING_CORES


def pinned(command: list[str], core: int) -> list[str]:
    return ["taskset", "-c", str(core), *command] if can_pin() else command


def bench_cores() -> set[int]:
    """The cores the measurements run on: what others use of them is taken from the bench."""
    return {SERVER_CORE, LOAD_CORE} if can_pin() else set(os.sched_getaffinity(0))


def claim_cores() -> str:
    """
    Pin the load generator (this process) to its core and raise its priority, which the servers
    it starts inherit, so that other work on a shared machine takes less from the measurements;
    return a sentence saying how the bench runs.
    """
    if can_pin():
        os.sched_setaffinity(0, {LOAD_CORE})
        how = (
            f"servers and Redis on core {SERVER_CORE} (taskset), load generator on core {LOAD_CORE}"
        )
    else:
        how = "no pinning (needs taskset and two cores)"
    try:
        os.setpriority(os.PRIO_PROCESS, 0, PRIORITY)
    except PermissionError:
        return how + "; normal priority (raising it needs root)"
    return how + f"; all at nice {PRIORITY}"


def site_command(port: int) -> list[str]:
    """The site's server as it is deployed (conference/server.py), on this port."""
    return [
        sys.executable,
        "-m",
        "conference.server",
        *DAPHNE_FLAGS,
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "conference.asgi:application",
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before listening")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


def clean_environment(**overrides: str) -> dict[str, str]:
    """This process's environment without the site's own variables, plus the overrides."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_URL", "REDIS_", "SIGNALING_"))
    }
    env.update(overrides)
    return env


@dataclasses.dataclass
class Room:
    slug: str
    sessions: list[str | None]  # one session key per seat; None where the server needs none


@dataclasses.dataclass
class Seating:
    """The rooms a server's clients join: a warm-up pair, rooms of two, and larger groups."""

    warmup: Room
    pairs: list[Room]
    groups: list[Room]

    @classmethod
    def anonymous(cls, *, pairs: int, groups: int, group_size: int) -> "Seating":
        """Seats on a baseline, which knows no people: any slug, no session."""
        return cls(
            warmup=Room("warmup", [None, None]),
            pairs=[Room(f"pair-{n}", [None, None]) for n in range(pairs)],
            groups=[Room(f"group-{n}", [None] * group_size) for n in range(groups)],
        )

    @classmethod
    def from_seed(cls, seeded: dict) -> "Seating":
        def room(entry: dict) -> Room:
            return Room(entry["slug"], entry["sessions"])

        return cls(
            warmup=room(seeded["warmup"]),
            pairs=[room(entry) for entry in seeded["pairs"]],
            groups=[room(entry) for entry in seeded["groups"]],
        )


@dataclasses.dataclass
class Server:
    """A server process under test, listening on `port`."""

    name: str
    port: int
    process: subprocess.Popen
    seating: Seating
    log_path: Path
    settings: dict[str, str] = dataclasses.field(default_factory=dict)
    log_start: int = 0  # where its log starts to count: after the start and the warm-up
    second: "Server | None" = None  # the other process of SITE_TWO_PROCESSES

    def processes(self) -> list["Server"]:
        return [self] if self.second is None else [self, self.second]

    @property
    def ports(self) -> list[int]:
        """The ports clients share out their seats on, in turn."""
        return [each.port for each in self.processes()]

    @property
    def pids(self) -> list[int]:
        return [each.process.pid for each in self.processes()]

    def mark_log(self) -> None:
        """Count what the server logs from now on (its start-up warnings are another matter)."""
        for each in self.processes():
            each.log_start = each.log_path.stat().st_size

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_summary(self) -> dict:
        """
        Summarise the server's log since `mark_log()`. Every server logs warnings and errors
        only, so each line is news: count them, and the tracebacks, and give the most common.
        """
        text = ""
        for each in self.processes():
            with open(each.log_path, "rb") as log:
                log.seek(each.log_start)
                text += log.read().decode(errors="replace")
        lines = [line for line in text.splitlines() if line]
        # A traceback's own lines are indented; count the line that heads it.
        heads = [LOG_TIME.sub("", line)[:200] for line in lines if not line[0].isspace()]
        return {
            "lines": len(lines),
            "tracebacks": sum(line.startswith("Traceback") for line in lines),
            "most_common": [f"{count}x {line}" for line, count in Counter(heads).most_common(3)],
        }


class RedisServer:
    """A redis-server of the run's own on a free port, next to the servers, saving nothing."""

    def __init__(self, run_dir: Path):
        self.port = free_port()
        self.log_path = run_dir / "redis.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (make system-packages)")
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                pinned(command, SERVER_CORE), stdout=log, stderr=subprocess.STDOUT
            )
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


class SiteDatabase:
    """A database of the site's, migrated and seeded for the run."""

    def __init__(self, url: str, env: dict[str, str], *, drop=None):
        self.url = url
        self.env = {**env, "DATABASE_URL": url}
        self.seating: Seating | None = None
        self.drop = drop

    def prepare(self, *, pairs: int, groups: int, group_size: int) -> Seating:
        run_python(["manage.py", "migrate", "--noinput"], self.env)
        seeded = run_python(
            [
                "-m",
                "bench.seed",
                f"--pairs={pairs}",
                f"--groups={groups}",
                f"--group-size={group_size}",
            ],
            self.env,
        )
        self.seating = Seating.from_seed(json.loads(seeded.splitlines()[-1]))
        return self.seating


def run_python(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"python {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def postgres_database(maintenance_url: str, name: str):
    """Create a database on the PostgreSQL server; return its URL and a function that drops it."""
    import psycopg

    with psycopg.connect(maintenance_url, autocommit=True, connect_timeout=5) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(maintenance_url, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return maintenance_url.rsplit("/", 1)[0] + f"/{name}", drop


class Servers:
    """
    Start each server under test fresh, with what it needs: the site's databases and Redis are
    made once per run, when first needed, and removed at the end.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        pairs: int,
        groups: int,
        group_size: int,
        postgres_url: str = POSTGRES_URL,
    ):
        self.run_dir = run_dir
        self.sizes = {"pairs": pairs, "groups": groups, "group_size": group_size}
        self.postgres_url = postgres_url
        self.token = secrets.token_hex(4)
        self.site_env = clean_environment(
            DJANGO_SETTINGS_MODULE="conference.settings",
            DJANGO_DEBUG="false",
            DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
            DJANGO_ALLOWED_HOSTS="127.0.0.1",
            DJANGO_SECURE_SSL_REDIRECT="false",
            DJANGO_SESSION_COOKIE_SECURE="false",
            DJANGO_CSRF_COOKIE_SECURE="false",
            DJANGO_LOG_LEVEL="WARNING",
        )
        self.databases: dict[str, SiteDatabase] = {}
        self.redis: RedisServer | None = None
        self.started = 0

    def __enter__(self) -> "Servers":
        return self

    def __exit__(self, *exc_info) -> None:
        if self.redis is not None:
            self.redis.stop()
        for database in self.databases.values():
            if database.drop is not None:
                with contextlib.suppress(Exception):
                    database.drop()

    def database(self, kind: str) -> SiteDatabase:
        if kind not in self.databases:
            if kind == "postgres":
                url, drop = postgres_database(self.postgres_url, f"bench_{self.token}")
                database = SiteDatabase(url, self.site_env, drop=drop)
            else:
                url = f"sqlite:///{self.run_dir / 'site.sqlite3'}"
                database = SiteDatabase(url, self.site_env)
            self.databases[kind] = database
            database.prepare(**self.sizes)
        return self.databases[kind]

    def own_pids(self, server: Server) -> list[int]:
        """The processes of the bench's own while a server is measured: it, Redis, the load."""
        redis = [self.redis.pid] if self.redis is not None and self.redis.pid else []
        return [*server.pids, *redis, os.getpid()]

    def redis_url(self) -> str:
        if self.redis is None:
            self.redis = RedisServer(self.run_dir)
            self.redis.start()
        return self.redis.url

    @contextlib.contextmanager
    def start(self, name: str, **settings: str):
        """Run a fresh server of this kind for the length of the block; yield it as a Server."""
        self.started += 1
        port = free_port()
        if name in (RELAY, FLOOR):
            env = clean_environment()
            if name == RELAY:
                command = [sys.executable, "-m", "bench.relay", "--port", str(port)]
            else:
                command = [sys.executable, "-m", "daphne", *DAPHNE_FLAGS]
                command += ["-b", "127.0.0.1", "-p", str(port), "bench.floor:application"]
            seating = Seating.anonymous(
                pairs=self.sizes["pairs"],
                groups=self.sizes["groups"],
                group_size=self.sizes["group_size"],
            )
        else:
            database = self.database("postgres" if name == SITE_POSTGRES else "sqlite")
            env = {**database.env, **settings}
            if name in (SITE_REDIS, SITE_TWO_PROCESSES):
                env["REDIS_URL"] = self.redis_url()
                env["REDIS_PREFIX"] = f"bench-{self.token}-{self.started}"
            command = site_command(port)
            seating = database.seating
        slug = name.replace(" + ", "-").replace(" ", "-").lower()
        log_path = self.run_dir / f"{self.started:02d}-{slug}.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                pinned(command, SERVER_CORE),
                cwd=BASE_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = Server(name, port, process, seating, log_path, settings)
        if name == SITE_TWO_PROCESSES:
            other_port = free_port()
            other_log = self.run_dir / f"{self.started:02d}-{slug}-second.log"
            with open(other_log, "ab") as log:
                other = subprocess.Popen(
                    pinned(site_command(other_port), SERVER_CORE),
                    cwd=BASE_DIR,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            server.second = Server(name, other_port, other, seating, other_log, settings)
        try:
            for each in server.processes():
                wait_for_port(each.port, each.process)
            yield server
        finally:
            for each in server.processes():
                each.stop()
