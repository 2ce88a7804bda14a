"""`make bench-intake`: how much of a bare Django INSERT the intake endpoint keeps under load.

For SQLite and then PostgreSQL, in one run: migrate a fresh database, create a Stripe source
with a signing secret, start gunicorn as production does (2 workers x 4 threads), and load two
endpoints alternately with the same Stripe-signed requests:

  bare  POST /bench/bare (bench/views.py): one INSERT of the raw body, 202.
  full  POST /api/v1/sources/<slug>/submissions: signature check, idempotency key (each
        event has its own id), INSERT; 202. (Workers poll for new rows and queue them; the
        request itself writes one row.)

Requests are built and signed before the clock starts, so the client's signing is not charged
to the server. No worker is started: received submissions just accumulate.

Run from the repository root: .venv/bin/python -m bench.intake
Environment: BENCH_SECONDS (8), BENCH_WARMUP_SECONDS (2), BENCH_ROUNDS (2), BENCH_CONCURRENCY
(16), BENCH_CLIENT_PROCESSES (2), BENCH_MAX_RPS (5000, sizes the pre-built requests),
BENCH_POSTGRES_URL, REDIS_URL (PostgreSQL run only: use the Redis broker).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
import http.client
import itertools
import json
import math
import multiprocessing
import os
from pathlib import Path
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Iterable, Iterator

from ingestion import signatures  # framework-free: no Django import in the driver

ROOT = Path(__file__).resolve().parent.parent
SLUG = "bench-stripe"
PATHS = {"bare": "/bench/bare", "full": f"/api/v1/sources/{SLUG}/submissions"}

SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
WARMUP_SECONDS = float(os.environ.get("BENCH_WARMUP_SECONDS", "2"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "16"))
CLIENT_PROCESSES = int(os.environ.get("BENCH_CLIENT_PROCESSES", "2"))
MAX_RPS = int(os.environ.get("BENCH_MAX_RPS", "5000"))
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/crmsync_bench")
REDIS_URL = os.environ.get("REDIS_URL", "")
MAX_ERROR_RATE = 0.01

# A customer.created event as Stripe sends it (shape of Stripe CLI's captured fixture), with
# a person in it; @ID@ becomes a unique event id, which is the source's idempotency key.
EVENT = json.dumps({
    "id": "@ID@", "object": "event", "api_version": "2020-08-27", "created": 1648320107,
    "data": {"object": {
        "id": "cus_00000000000000", "object": "customer", "address": None, "balance": 0,
        "created": 1648320107, "currency": None, "default_source": None, "delinquent": False,
        "description": "Analytical Engines", "discount": None, "email": "ada.lovelace@example.com",
        "invoice_prefix": "985BA9CB",
        "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None},
        "livemode": False, "metadata": {"company": "Analytical Engines", "country": "GB"},
        "name": "Ada Lovelace", "next_invoice_sequence": 1, "phone": "+44 20 7946 0000",
        "preferred_locales": [], "shipping": None, "tax_exempt": "none", "test_clock": None,
    }},
    "livemode": False, "pending_webhooks": 1,
    "request": {"id": "req_00000000000000", "idempotency_key": "381c7773-97ac-4c18-8fbe-e8bff5e6bbad"},
    "type": "customer.created",
}, indent=2).encode()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- Steps run in a child process under the bench's settings ---------------------------------


def prepare() -> None:
    """The bare view's table and the Stripe source with its signing secret."""
    import django

    django.setup()
    from django.db import connection

    from bench.views import BARE_TABLE
    from ingestion.credentials import source_secret_add
    from ingestion.models import Source, SourceSecret

    with connection.cursor() as cursor:
        cursor.execute(BARE_TABLE[connection.vendor])
    source = Source.objects.create(name="Bench Stripe", slug=SLUG, kind="stripe")
    source_secret_add(source=source, purpose=SourceSecret.Purpose.SIGNING, value=os.environ["BENCH_SIGNING_SECRET"])


def tally() -> None:
    """Print what the full path stored, and how much of it a worker would pick up."""
    import django

    django.setup()
    from ingestion.models import Submission

    counts = {"stored": Submission.objects.count(),
              "claimable": Submission.objects.filter(status="received", queued_at__isnull=True).count()}
    print(json.dumps(counts))


# --- Databases ---------------------------------------------------------------------------------


@dataclass
class Target:
    name: str  # sqlite | postgres
    env: dict[str, str]
    broker: str


def base_env(var_dir: Path, secret: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "CRMSYNC_VAR_DIR": str(var_dir),
        # Only so that settings generate their local secrets in var_dir; bench.settings then
        # serves with DEBUG off.
        "DEBUG": "true",
        "SANDBOX_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        "Q_CLUSTER_NAME": f"crmsync-bench-{secrets.token_hex(4)}",
        "BENCH_SIGNING_SECRET": secret,
    }


def sqlite_target(tmp: Path, secret: str) -> Target:
    var_dir = tmp / "sqlite-var"
    env = base_env(var_dir, secret)
    # An empty REDIS_URL (not an absent one) also wins over a REDIS_URL in a .env file.
    env.update(DATABASE_URL=f"sqlite:///{var_dir / 'bench.sqlite3'}", REDIS_URL="")
    return Target("sqlite", env, "orm")


def postgres_target(tmp: Path, secret: str) -> Target:
    recreate_postgres_database(POSTGRES_URL)
    env = base_env(tmp / "postgres-var", secret)
    env.update(DATABASE_URL=POSTGRES_URL, REDIS_URL=REDIS_URL)
    return Target("postgres", env, "redis" if REDIS_URL else "orm")


def recreate_postgres_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    params = psycopg.conninfo.conninfo_to_dict(url)
    name = params.get("dbname") or "crmsync_bench"
    try:
        conn = psycopg.connect(**{**params, "dbname": "postgres"}, autocommit=True)
    except psycopg.OperationalError as exc:
        raise SystemExit(f"PostgreSQL is not reachable ({exc}); start it or set BENCH_POSTGRES_URL.") from exc
    with conn:
        # FORCE: a gunicorn left over from an interrupted run must not keep the old one alive.
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def run_step(target: Target, args: list[str], what: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=target.env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{what} failed on {target.name}:\n{done.stdout}{done.stderr}")
    return done.stdout


# --- The server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gunicorn(target: Target, log_path: Path) -> Iterator[int]:
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "crmsync.wsgi", "--bind", f"127.0.0.1:{port}",
           "--workers", "2", "--threads", "4", "--timeout", "60"]
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=target.env, stdout=log_file, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_healthy(proc, port, log_path)
        yield port
    finally:
        stop(proc)


def wait_healthy(proc: subprocess.Popen, port: int, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited:\n{log_path.read_text()[-4000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"gunicorn did not answer /healthz within 60 s:\n{log_path.read_text()[-4000:]}")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to gunicorn's process group (arbiter and workers), SIGKILL if it lingers."""
    for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


# --- The load generator ------------------------------------------------------------------------
# Client processes x threads, one keep-alive connection each, sending pre-built request bytes
# and parsing only the status line and Content-Length: a few tens of microseconds per request,
# so on two shared cores the server, not the client, sets the pace.


def build_requests(path: str, port: int, secret: str, prefix: str, count: int) -> list[bytes]:
    stamp = time.time()  # Stripe's window is 300 s; a phase lasts seconds
    built = []
    for i in range(count):
        body = EVENT.replace(b"@ID@", f"evt_{prefix}_{i}".encode())
        headers = {
            "Host": f"127.0.0.1:{port}",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Content-Type": "application/json; charset=utf-8",
            "Content-Length": str(len(body)),
            **signatures.sign("stripe", secret=secret, body=body, timestamp=stamp),
        }
        head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        built.append(head.encode("ascii") + body)
    return built


def read_response(sock: socket.socket) -> tuple[int, bytes, bool]:
    """Status, body, and whether the server will close the connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the response")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, close = None, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            close = value.strip().lower() == b"close"
    if length is None:
        raise ConnectionError("response without Content-Length")
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed in the response body")
        body += chunk
    return status, body, close


@dataclass
class Tally:
    ok: int = 0
    errors: int = 0
    exhausted: bool = False
    last: float = 0.0
    latencies: list[float] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.samples) < 3:
            self.samples.append(text)


def drive(port: int, requests: Iterable[bytes], deadline: float, tally: Tally) -> None:
    sock = None
    for raw in requests:
        if time.monotonic() >= deadline:
            break
        started = time.perf_counter()
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(raw)
            status, body, close = read_response(sock)
        except OSError as exc:
            tally.error(f"{type(exc).__name__}: {exc}")
            if sock is not None:
                sock.close()
            sock = None
            continue
        elapsed = time.perf_counter() - started
        if 200 <= status < 300:
            tally.ok += 1
            tally.latencies.append(elapsed)
        else:
            tally.error(f"{status} {body[:200]!r}")
        if close:
            sock.close()
            sock = None
    else:
        tally.exhausted = True
    tally.last = time.monotonic()
    if sock is not None:
        sock.close()


def client(connections: int, path: str, port: int, secret: str, prefix: str, seconds: float,
           barrier, results) -> None:
    """One client process: build every request first, then load until the deadline."""
    if path == PATHS["bare"]:
        # The bare view has no idempotency key to keep unique: it may send its requests again.
        batches = [itertools.cycle(build_requests(path, port, secret, f"{prefix}_{i}", 100)) for i in range(connections)]
    else:
        per_connection = math.ceil(seconds * MAX_RPS / CONCURRENCY) + 50
        batches = [build_requests(path, port, secret, f"{prefix}_{i}", per_connection) for i in range(connections)]
    barrier.wait()
    cpu = time.process_time()
    start = time.monotonic()
    tallies = [Tally() for _ in batches]
    threads = [threading.Thread(target=drive, args=(port, batch, start + seconds, tally))
               for batch, tally in zip(batches, tallies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put({
        "cpu": time.process_time() - cpu,
        "start": start,
        "end": max(t.last for t in tallies),
        "ok": sum(t.ok for t in tallies),
        "errors": sum(t.errors for t in tallies),
        "exhausted": any(t.exhausted for t in tallies),
        "latencies": [x for t in tallies for x in t.latencies],
        "samples": [s for t in tallies for s in t.samples],
    })


@dataclass
class Phase:
    rps: float
    p50_ms: float
    p99_ms: float
    ok: int
    errors: int
    samples: list[str]
    client_us: float  # the load generator's own CPU per request, to show it is not the bottleneck


def load(case: str, port: int, secret: str, seconds: float, prefix: str) -> Phase:
    ctx = multiprocessing.get_context("fork")
    processes = max(1, min(CLIENT_PROCESSES, CONCURRENCY))
    split = [CONCURRENCY // processes + (i < CONCURRENCY % processes) for i in range(processes)]
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    children = [ctx.Process(target=client, daemon=True,
                            args=(n, PATHS[case], port, secret, f"{prefix}_{i}", seconds, barrier, results))
                for i, n in enumerate(split)]
    for child in children:
        child.start()
    parts = [results.get(timeout=seconds + 120) for _ in children]
    for child in children:
        child.join()
    if any(p["exhausted"] for p in parts):
        done = sum(p["ok"] + p["errors"] for p in parts)
        raise SystemExit(f"{case}: the client ran out of pre-built requests after {done} in "
                         f"{max(p['end'] for p in parts) - min(p['start'] for p in parts):.2f} s "
                         f"({sum(p['errors'] for p in parts)} errors, e.g. {[x for p in parts for x in p['samples']][:3]}); "
                         f"if there were no errors, raise BENCH_MAX_RPS above {MAX_RPS}")
    latencies = sorted(x for p in parts for x in p["latencies"])
    elapsed = max(p["end"] for p in parts) - min(p["start"] for p in parts)
    ok = sum(p["ok"] for p in parts)
    return Phase(rps=ok / elapsed, p50_ms=percentile(latencies, 0.50) * 1000, p99_ms=percentile(latencies, 0.99) * 1000,
                 ok=ok, errors=sum(p["errors"] for p in parts), samples=[s for p in parts for s in p["samples"]],
                 client_us=sum(p["cpu"] for p in parts) / max(ok, 1) * 1e6)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


# --- One database --------------------------------------------------------------------------------


def bench(target: Target, secret: str, tmp: Path) -> tuple[list[str], dict[str, float], bool]:
    """Figures as `name: value` lines, the best rps per case, and whether the run is valid."""
    log(f"== {target.name}: migrate")
    run_step(target, ["manage.py", "migrate", "--noinput", "-v", "0"], "migrate")
    run_step(target, ["-m", "bench.intake", "prepare"], "prepare")
    rounds: dict[str, list[Phase]] = {"bare": [], "full": []}
    full_ok = 0
    with gunicorn(target, tmp / f"gunicorn-{target.name}.log") as port:
        for case in ("bare", "full"):
            phase = load(case, port, secret, WARMUP_SECONDS, f"{target.name}_warm")
            log(f"== {target.name}: warm-up {case}: {phase.rps:.1f} rps, {phase.errors} errors")
            full_ok += phase.ok if case == "full" else 0
        for n in range(ROUNDS):
            for case in ("bare", "full") if n % 2 == 0 else ("full", "bare"):
                phase = load(case, port, secret, SECONDS, f"{target.name}_r{n}")
                log(f"== {target.name}: round {n + 1} {case}: {phase.rps:.1f} rps, {phase.errors} errors, "
                    f"client {phase.client_us:.0f} us CPU/request")
                rounds[case].append(phase)
                full_ok += phase.ok if case == "full" else 0
    counts = json.loads(run_step(target, ["-m", "bench.intake", "tally"], "tally").splitlines()[-1])

    lines, best, valid = [f"broker_{target.name}: {target.broker}"], {}, True
    for case, phases in rounds.items():
        top = max(phases, key=lambda p: p.rps)
        best[case] = top.rps
        name = f"{case}_{target.name}"
        errors, total = sum(p.errors for p in phases), sum(p.ok + p.errors for p in phases)
        lines += [
            f"{name}_rps: {top.rps:.1f}",
            f"{name}_p50_ms: {top.p50_ms:.2f}",
            f"{name}_p99_ms: {top.p99_ms:.2f}",
            f"{name}_rps_rounds: {', '.join(f'{p.rps:.1f}' for p in phases)}",
            f"errors_{name}: {errors}",
        ]
        if errors > MAX_ERROR_RATE * max(total, 1):
            valid = False
            log(f"FAIL {name}: {errors} of {total} requests failed; e.g. {[s for p in phases for s in p.samples][:3]}")
    lines += [f"stored_full_{target.name}: {counts['stored']}", f"claimable_full_{target.name}: {counts['claimable']}"]
    # Every 202 of the full path must be a stored submission waiting for a worker: a bench that
    # got fast by skipping work would show here.
    if counts["stored"] < full_ok or counts["claimable"] < full_ok:
        valid = False
        log(f"FAIL {target.name}: {full_ok} accepted but {counts['stored']} stored and {counts['claimable']} claimable")
    return lines, best, valid


def main() -> int:
    if len(sys.argv) > 1:
        {"prepare": prepare, "tally": tally}[sys.argv[1]]()
        return 0
    load_1min, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load_1min > cpus / 2:
        log(f"note: load average {load_1min:.1f} on {cpus} CPUs before the run; other processes compete "
            "with the server and the figures will be noisy (BENCH_ROUNDS=4 damps it)")
    secret = "whsec_" + secrets.token_hex(16)
    ratios, valid = {}, True
    with tempfile.TemporaryDirectory(prefix="crmsync-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for make_target in (sqlite_target, postgres_target):
            target = make_target(tmp, secret)
            lines, best, ok = bench(target, secret, tmp)
            print("\n".join(lines), flush=True)
            ratios[target.name] = best["full"] / best["bare"] if best["bare"] else 0.0
            valid = valid and ok
    for name, ratio in ratios.items():
        print(f"intake_ratio_{name}: {ratio:.3f}", flush=True)
    return 0 if valid else 1


if __name__ == "__main__":
    sys.exit(main())
