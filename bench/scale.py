"""Scale: N waiting conversations in one MCP server process, memory mode (issue 14's table).

For each N of --sizes (default 500,1000,2000,3000) a fresh simulator
(`miaw-mcp simulator --no-rate-limits`) and ONE `miaw-mcp serve` process (memory mode) run as
subprocesses on loopback; this process is the load generator. It reuses bench/delivery.py's
machinery (servers, the minimal HTTP client, guests, keep_reading) and:

  1. sets up N guests, --setup-concurrency at a time, each with a conversation and a human agent
     joined (delivery.py's start_guest); a guest that fails is counted as an error, not fatal;
     once --max-setup-errors guests failed, no more are started (the size is then reported with
     the conversations that did start: "set up" < N);
  2. keeps a list_conversation_entries call (waitSeconds 25, no cursor) waiting for every guest,
     back to back until the end of the size (delivery.py's keep_reading; the first calls are
     staggered over 25 s so that the renewals spread out); every agent message each read brings
     is recorded with the conversation it came in;
  3. server RSS with every read waiting ("RSS after set-up"), its growth over the idle server just
     after start divided by the conversations set up ("KiB/conv"), and the server's CPU share
     while just waiting: CPU seconds / wall seconds over --idle-seconds (default 20) with no
     message posted, the reads renewing every 25 s (from /proc, in % of one core);
  4. steady load: agent messages (simulator control API) at 20/s, then at 100/s, each for
     --steady-seconds (default 30), each to the next conversation of a shuffled round; latency =
     the post's request written → the return of the read that brought it: p50/p95/p99;
  5. a burst: one agent message to every conversation at once; "burst last arrival" = the
     start of the burst (all posts launched together) → the return of the last read bringing one;
  6. peak RSS (VmHWM over the server's life), errors (guests that failed to set up + read calls
     and posts that failed), lost (posted, but never brought by a read of its own conversation
     by the end) and duplicated (extra copies brought by its conversation's reads, or copies
     brought by another conversation's).

--before DIR measures the same with the MCP server run from another checkout DIR (e.g. made with
`git worktree add /tmp/before <commit>`): this venv's python, cwd=DIR and PYTHONPATH=DIR, so that
DIR's app/ is the one imported (checked before anything runs). --after DIR likewise replaces this
checkout's working tree (the default "after") by another checkout, e.g. a worktree of a commit, so
that edits made in the working tree while the bench runs cannot reach it; the commit and any
uncommitted app/ changes of each side are printed for every size. The simulator always runs from
the after side's checkout, so both sides face the same Salesforce. Per N the before server is
measured first, then the after one; a table per side is printed at the end (markdown). Exit
status 0 once the sizes were measured, whatever they showed; 2 when the bench could not run.

Not part of the pytest suite. Time per size and side: set-up (about a minute per 1,000 guests on
2 cores, longer when guests fail), about 5 s per 1,000 for the first reads to park,
--idle-seconds, twice --steady-seconds, the burst, up to 25 s per phase for late messages, and the
server's shutdown (it ends every Salesforce session, up to 25 s).

Usage: .venv/bin/python bench/scale.py [--sizes 500,1000,2000,3000] [--before DIR] [--after DIR]
           [--steady-seconds 30] [--idle-seconds 20] [--rates 20,100]
           [--setup-concurrency 20] [--max-setup-errors 25]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from delivery import (
    REPO,
    WAIT,
    Arrivals,
    BenchError,
    Cluster,
    Guest,
    Page,
    cpu_seconds,
    free_ports,
    keep_reading,
    pct,
    rss_mib,
    run_server,
    server_env,
    start_guest,
)

LATE = WAIT + 5.0  # how long after its last post a phase waits for messages still on their way


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the most RSS the process ever had."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# -- which code a side runs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """The checkout whose app/ the MCP server runs."""

    name: str
    root: Path

    def env(self, sim_port: int, port: int, log_level: str) -> dict[str, str]:
        env = {**server_env(sim_port, log_level), "PORT": str(port)}
        if self.root != REPO:
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(self.root), os.environ.get("PYTHONPATH", "")) if p
            )
        return env

    def imported_app(self) -> Path:
        """The app/ that `python -m app` run as by run_server imports (this venv's python)."""
        env = self.env(0, 0, "WARNING")
        out = subprocess.run(
            [sys.executable, "-c", "import app; print(app.__file__)"],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise BenchError(f"{self.name}: cannot import app from {self.root}:\n{out.stderr}")
        return Path(out.stdout.strip()).resolve().parent

    def describe(self) -> str:
        """Commit, and a digest of uncommitted changes under app/ (the code measured)."""

        def git(*args: str) -> str:
            out = subprocess.run(
                ["git", "-C", str(self.root), *args], capture_output=True, text=True, check=False
            )
            return out.stdout.strip()

        commit = git("rev-parse", "--short", "HEAD") or "?"
        diff = git("diff", "HEAD", "--", "app")
        if not diff:
            return f"{commit}, app/ as committed"
        digest = hashlib.sha256(diff.encode()).hexdigest()[:8]
        files = len(git("diff", "--name-only", "HEAD", "--", "app").splitlines())
        return f"{commit} + uncommitted changes in {files} file(s) under app/ (diff {digest})"


# -- what the reads brought ------------------------------------------------------------------------


class Ledger:
    """Every agent message posted (its conversation, when its post was written) and every copy the
    reads brought (the conversation whose read brought it, and when that read returned)."""

    def __init__(self) -> None:
        self.expected: dict[str, int] = {}
        """text → index of the guest it was posted to (set before the post is written)"""
        self.sent: dict[str, float] = {}
        """text → perf_counter() just before its post was written (set once the post answered)"""
        self.copies: dict[str, list[int]] = {}
        """text → the guest index of every read that brought it"""
        self.first: dict[str, float] = {}
        """text → when the first read of its own conversation that brought it returned"""
        self.errors: list[str] = []
        """read calls and posts that failed"""
        self._arrival = asyncio.Event()

    def expect(self, text: str, index: int) -> None:
        self.expected[text] = index

    def failed(self, text: str, error: str) -> None:
        del self.expected[text]
        self.errors.append(error)
        self._arrival.set()

    def arrived(self, index: int, text: str, page: Page) -> None:
        self.copies.setdefault(text, []).append(index)
        if self.expected.get(text) == index and text not in self.first:
            self.first[text] = page.returned_at
            self._arrival.set()

    def outstanding(self, texts: Sequence[str]) -> int:
        return sum(1 for t in texts if t in self.expected and t not in self.first)

    async def settle(self, texts: Sequence[str], within: float) -> None:
        """Wait until every one of `texts` arrived in its conversation, or `within` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while self.outstanding(texts):
                    self._arrival.clear()
                    await self._arrival.wait()

    def latencies_ms(self, texts: Sequence[str]) -> list[float]:
        return [
            (self.first[t] - self.sent[t]) * 1000
            for t in texts
            if t in self.sent and t in self.first
        ]

    def lost(self) -> int:
        return sum(1 for text in self.sent if text not in self.first)

    def duplicated(self) -> int:
        """Copies beyond the first in its own conversation, plus copies in another one."""
        extra = 0
        for text, copies in self.copies.items():
            own = self.expected.get(text)
            mine = copies.count(own) if own is not None else 0
            extra += max(0, mine - 1) + (len(copies) - mine)
        return extra


class Inbox(Arrivals):
    """What keep_reading hands over for one guest, passed to the ledger with the guest's index."""

    def __init__(self, index: int, ledger: Ledger) -> None:
        super().__init__()
        self.index = index
        self.ledger = ledger

    def arrived(self, text: str, page: Page) -> None:
        self.ledger.arrived(self.index, text, page)


async def post(guest: Guest, index: int, text: str, ledger: Ledger) -> None:
    """One agent message; a failed post is an error, not a lost message."""
    ledger.expect(text, index)
    try:
        response = await guest.agent("message", {"text": text})
    except (BenchError, OSError, TimeoutError) as exc:
        ledger.failed(text, f"post {text!r}: {exc!r}")
        return
    ledger.sent[text] = response.sent_at


# -- the measurements of one size ------------------------------------------------------------------


@dataclass
class Rate:
    rate: float
    posted: int
    seconds: float
    lag_ms: float
    latencies: list[float]
    late: int
    """messages not yet arrived when the phase stopped waiting for them"""
    cpu: dict[str, float]


@dataclass
class SizeResult:
    side: str
    n: int
    set_up: int = 0
    setup_errors: list[str] = field(default_factory=list)
    not_started: int = 0
    setup_s: float = 0.0
    rss_start: float = float("nan")
    rss_ready: float = float("nan")
    rss_waiting: float = float("nan")
    peak_rss: float = float("nan")
    idle_cpu: dict[str, float] = field(default_factory=dict)
    idle_s: float = 0.0
    rates: list[Rate] = field(default_factory=list)
    burst_ms: list[float] = field(default_factory=list)
    burst_last_ms: float | None = None
    burst_posted: int = 0
    ledger: Ledger = field(default_factory=Ledger)
    note: str = ""
    code: str = ""
    """the side's commit and uncommitted app/ changes when this size started"""

    @property
    def kib_per_conversation(self) -> float:
        if not self.set_up:
            return float("nan")
        return (self.rss_waiting - self.rss_start) * 1024 / self.set_up

    @property
    def errors(self) -> int:
        return len(self.setup_errors) + len(self.ledger.errors)


async def set_up_guests(
    ports: list[int], sim_port: int, n: int, concurrency: int, max_errors: int, result: SizeResult
) -> list[Guest]:
    """Start up to `n` guests, `concurrency` at a time; failures are counted in `result`, and once
    `max_errors` failed no more are started."""
    semaphore = asyncio.Semaphore(concurrency)
    guests: list[Guest | None] = [None] * n
    progress = max(100, n // 10)

    async def one(i: int) -> None:
        async with semaphore:
            if len(result.setup_errors) >= max_errors:
                result.not_started += 1
                return
            try:
                guests[i] = await start_guest(ports, sim_port, f"Agent {i}")
            except Exception as exc:  # every failure is counted, none is fatal
                result.setup_errors.append(f"guest {i}: {exc!r}")
                if len(result.setup_errors) == max_errors:
                    print(
                        f"    {max_errors} guests failed to set up: starting no more; first: "
                        f"{result.setup_errors[0]}",
                        flush=True,
                    )
                return
            done = sum(g is not None for g in guests)
            if done % progress == 0:
                print(
                    f"    {done} guests set up, {len(result.setup_errors)} failed "
                    f"({time.perf_counter() - started:.0f} s)",
                    flush=True,
                )

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return [g for g in guests if g is not None]


def cpu_shares(pids: dict[str, int], before: dict[str, float], seconds: float) -> dict[str, float]:
    return {name: (cpu_seconds(pid) - before[name]) * 100 / seconds for name, pid in pids.items()}


async def at_rate(
    guests: list[Guest], ledger: Ledger, rate: float, seconds: float, tag: str, pids: dict[str, int]
) -> Rate:
    """Agent messages at `rate` per second for `seconds`, each to the next guest of a shuffled
    round; then wait for those still on their way."""
    n = len(guests)
    order = random.Random(int(rate)).sample(range(n), n)
    total = max(1, round(rate * seconds))
    texts = [f"{tag} message {k}" for k in range(total)]
    loop = asyncio.get_running_loop()
    posts: list[asyncio.Task[None]] = []
    lag = 0.0
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = loop.time()
    for k, text in enumerate(texts):
        delay = started + k / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            lag = max(lag, -delay)
        index = order[k % n]
        posts.append(asyncio.create_task(post(guests[index], index, text, ledger)))
    await asyncio.gather(*posts)
    elapsed = loop.time() - started
    cpu = cpu_shares(pids, cpu_before, elapsed)
    await ledger.settle(texts, LATE)
    return Rate(
        rate,
        sum(1 for t in texts if t in ledger.sent),
        elapsed,
        lag * 1000,
        ledger.latencies_ms(texts),
        ledger.outstanding(texts),
        cpu,
    )


async def burst(guests: list[Guest], ledger: Ledger, result: SizeResult) -> None:
    """One agent message to every conversation at once; the last arrival."""
    await asyncio.gather(*(g.control.open() for g in guests), return_exceptions=True)
    texts = [f"burst message {i}" for i in range(len(guests))]
    started = time.perf_counter()
    await asyncio.gather(*(post(g, i, texts[i], ledger) for i, g in enumerate(guests)))
    await ledger.settle(texts, LATE)
    result.burst_posted = sum(1 for t in texts if t in ledger.sent)
    result.burst_ms = ledger.latencies_ms(texts)
    arrivals = [ledger.first[t] for t in texts if t in ledger.sent and t in ledger.first]
    if arrivals:
        result.burst_last_ms = (max(arrivals) - started) * 1000


async def measure_size(side: Side, sim_side: Side, n: int, args: argparse.Namespace) -> SizeResult:
    """A fresh simulator (of `sim_side`) and server of `side`; N guests; every measurement; stop
    both."""
    result = SizeResult(side.name, n, code=side.describe())
    sim_port, port = free_ports(2)
    guests: list[Guest] = []
    readers: list[asyncio.Task[None]] = []
    async with contextlib.AsyncExitStack() as stack:
        sim_args = ["simulator", "--port", str(sim_port), "--no-rate-limits"]
        sim = await stack.enter_async_context(
            run_server(
                "simulator",
                sim_args,
                b"listening on",
                sim_side.env(sim_port, sim_port, args.server_log_level),
                cwd=sim_side.root,
            )
        )
        server = await stack.enter_async_context(
            run_server(
                f"MCP server ({side.name})",
                ["serve", "--port", str(port)],
                b"serving MCP at",
                side.env(sim_port, port, args.server_log_level),
                cwd=side.root,
            )
        )
        cluster = Cluster("memory", sim, sim_port, [server], [port])
        try:
            [health] = await cluster.health()
            if health.get("state") != "memory":
                raise BenchError(f"the server is not in memory mode: {health}")
            await asyncio.sleep(1.0)  # let start-up settle before the idle server's RSS
            result.rss_start = rss_mib(server.pid)
            print(
                f"\n== {side.name}, N = {n}: server pid {server.pid} ({result.rss_start:.1f} MiB "
                f"idle), simulator pid {sim.pid}; code {result.code}; load average "
                f"{os.getloadavg()[0]:.2f}",
                flush=True,
            )
            await measure(cluster, n, args, result, guests, readers)
        except (BenchError, OSError, TimeoutError) as exc:
            crashed = cluster.crashed()
            result.note = f"stopped early: {exc!r}" + (f"; {crashed}" if crashed else "")
            print(f"    {result.note}", flush=True)
        finally:
            if server.proc.returncode is None:
                result.peak_rss = peak_rss_mib(server.pid)
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            for guest in guests:
                guest.close()
    return result


async def measure(
    cluster: Cluster,
    n: int,
    args: argparse.Namespace,
    result: SizeResult,
    guests: list[Guest],
    readers: list[asyncio.Task[None]],
) -> None:
    server = cluster.servers[0]
    pids = {"server": server.pid, "simulator": cluster.sim.pid, "bench": os.getpid()}
    started = time.perf_counter()
    guests += await set_up_guests(
        cluster.ports, cluster.sim_port, n, args.setup_concurrency, args.max_setup_errors, result
    )
    result.setup_s = time.perf_counter() - started
    result.set_up = len(guests)
    result.rss_ready = rss_mib(server.pid)
    print(
        f"    set-up: {len(guests)} of {n} guests in {result.setup_s:.1f} s, "
        f"{len(result.setup_errors)} failed"
        + (f", {result.not_started} not started" if result.not_started else "")
        + (f"; first failure: {result.setup_errors[0]}" if result.setup_errors else "")
        + f"; server RSS {result.rss_ready:.1f} MiB",
        flush=True,
    )
    if not guests:
        result.note = "no guest could be set up"
        return

    ledger = result.ledger
    count = len(guests)
    readers += [
        asyncio.create_task(
            keep_reading(guest, max(1.0, WAIT * (i + 1) / count), Inbox(i, ledger), ledger.errors)
        )
        for i, guest in enumerate(guests)
    ]
    await asyncio.sleep(max(2.0, count / 200))  # every first call reaches the server and parks
    result.rss_waiting = rss_mib(server.pid)

    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    idle_started = time.perf_counter()
    await asyncio.sleep(args.idle_seconds)
    result.idle_s = time.perf_counter() - idle_started
    result.idle_cpu = cpu_shares(pids, cpu_before, result.idle_s)
    print(
        f"    {count} reads waiting: server RSS {result.rss_waiting:.1f} MiB "
        f"({result.kib_per_conversation:.1f} KiB per conversation over the idle server); "
        f"CPU while just waiting ({result.idle_s:.1f} s), % of one core: "
        + ", ".join(f"{k} {v:.0f}" for k, v in result.idle_cpu.items()),
        flush=True,
    )

    for rate in args.rates:
        measured = await at_rate(guests, ledger, rate, args.steady_seconds, f"{rate:g}/s", pids)
        result.rates.append(measured)
        print(
            f"    {rate:g} msg/s: {measured.posted} posted over {measured.seconds:.1f} s (the "
            f"bench fell behind by at most {measured.lag_ms:.0f} ms): {triple(measured.latencies)}"
            f" (max {fmt_ms(max(measured.latencies, default=float('nan')))}); "
            f"{measured.late} still missing {LATE:g} s after the last post; CPU, % of one core: "
            + ", ".join(f"{k} {v:.0f}" for k, v in measured.cpu.items()),
            flush=True,
        )

    await burst(guests, ledger, result)
    print(
        f"    burst: {result.burst_posted} messages at once: {triple(result.burst_ms)}, last "
        f"arrival {fmt_ms(result.burst_last_ms)}",
        flush=True,
    )
    result.peak_rss = peak_rss_mib(server.pid)
    print(
        f"    server peak RSS {result.peak_rss:.1f} MiB; errors {result.errors} "
        f"(set-up {len(result.setup_errors)}, reads and posts {len(ledger.errors)}"
        + (f"; first: {ledger.errors[0]}" if ledger.errors else "")
        + f"); lost {ledger.lost()}, duplicated {ledger.duplicated()}; load average "
        f"{os.getloadavg()[0]:.2f}",
        flush=True,
    )


# -- the table -------------------------------------------------------------------------------------


def fmt_ms(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    if value >= 1000:
        return f"{value / 1000:.1f} s"
    if value >= 100:
        return f"{value:.0f} ms"
    return f"{value:.1f} ms"


def triple(values: list[float]) -> str:
    """p50 / p95 / p99."""
    if not values:
        return "-"
    return " / ".join(fmt_ms(pct(values, q)) for q in (0.50, 0.95, 0.99))


def mib(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f} MiB"


def table(results: list[SizeResult], rates: Sequence[float]) -> str:
    head = [
        "N",
        "set up",
        "RSS after set-up",
        "peak RSS",
        "KiB/conv",
        "server CPU waiting",
        *(f"{r:g} msg/s p50 / p95 / p99" for r in rates),
        "burst last arrival",
        "errors",
        "lost",
        "duplicated",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        by_rate = {m.rate: m for m in r.rates}
        cpu = r.idle_cpu.get("server")
        cells = [
            f"{r.n:,}",
            f"{r.set_up:,}" + ("" if r.set_up == r.n else f" ({len(r.setup_errors)} failed)"),
            mib(r.rss_waiting),
            mib(r.peak_rss),
            "-" if math.isnan(r.kib_per_conversation) else f"{r.kib_per_conversation:.0f}",
            "-" if cpu is None else f"{cpu:.0f} %",
            *(triple(by_rate[x].latencies) if x in by_rate else "-" for x in rates),
            fmt_ms(r.burst_last_ms) + (f" ({r.burst_posted:,})" if r.burst_posted else ""),
            str(r.errors),
            str(r.ledger.lost()),
            str(r.ledger.duplicated()),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    sides = [Side("after", (args.after or REPO).resolve())]
    if args.before is not None:
        sides.insert(0, Side("before", args.before.resolve()))
    descriptions: dict[str, str] = {}
    for side in sides:
        imported = side.imported_app()
        if imported != (side.root / "app").resolve():
            raise BenchError(f"{side.name}: the server would import {imported}, not {side.root}")
        descriptions[side.name] = f"{side.root} ({side.describe()}), imports {imported}"
    print(
        f"scale benchmark (machine: {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.2f}; sizes {', '.join(map(str, args.sizes))}; "
        f"{args.idle_seconds:g} s idle, {args.steady_seconds:g} s per rate; server log level "
        f"{args.server_log_level}); the simulator runs from {sides[-1].root}",
        flush=True,
    )
    for side in sides:
        print(f"  {side.name}: {descriptions[side.name]}", flush=True)
    results: dict[str, list[SizeResult]] = {side.name: [] for side in sides}
    started = time.perf_counter()
    for n in args.sizes:
        for side in sides:
            results[side.name].append(await measure_size(side, sides[-1], n, args))
    print(f"\n== tables (measured in {(time.perf_counter() - started) / 60:.1f} min)", flush=True)
    for side in sides:
        print(f"\n{side.name}: {descriptions[side.name]}\n", flush=True)
        print(table(results[side.name], args.rates), flush=True)
        if len({r.code for r in results[side.name]}) > 1:
            print(f"\nthe {side.name} code changed during the run:", flush=True)
            for r in results[side.name]:
                print(f"  N = {r.n:,}: {r.code}", flush=True)
        for r in results[side.name]:
            if r.note:
                print(f"\nN = {r.n:,}: {r.note}", flush=True)
    print(
        "\nRSS after set-up: with every read waiting; KiB/conv: its growth over the idle server "
        "/ conversations set up; server CPU waiting: % of one core over "
        f"{args.idle_seconds:g} s with every read waiting and no message; p50 / p95 / p99: agent "
        "message posted → return of the read that brought it; burst: one message to every "
        "conversation at once, start → last arrival; errors: set-up failures + failed reads "
        "and posts; lost / duplicated: posted messages not brought by their conversation's reads "
        "/ extra copies.",
        flush=True,
    )


def numbers(kind: Callable[[str], float | int], text: str) -> list[float | int]:
    return [kind(part) for part in text.split(",") if part.strip()]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=functools.partial(numbers, int),
        default=[500, 1000, 2000, 3000],
        help="waiting conversations per run, comma-separated (default 500,1000,2000,3000)",
    )
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="another checkout whose server to measure too (e.g. a git worktree)",
    )
    parser.add_argument(
        "--after",
        type=Path,
        default=None,
        help="measure this checkout's server instead of the working tree's (default: this one)",
    )
    parser.add_argument(
        "--rates",
        type=functools.partial(numbers, float),
        default=[20.0, 100.0],
        help="steady rates of agent messages per second (default 20,100)",
    )
    parser.add_argument("--steady-seconds", type=float, default=30.0, help="per rate")
    parser.add_argument(
        "--idle-seconds", type=float, default=20.0, help="CPU measured with every read waiting"
    )
    parser.add_argument("--setup-concurrency", type=int, default=20, help="guests set up at once")
    parser.add_argument(
        "--max-setup-errors",
        type=int,
        default=25,
        help="stop starting guests of a size once this many failed to set up",
    )
    parser.add_argument(
        "--server-log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="LOG_LEVEL of the MCP server (INFO is its default)",
    )
    args = parser.parse_args()
    if not args.sizes or min(args.sizes) < 1:
        parser.error("--sizes must be positive")
    if not args.rates or min(args.rates) <= 0:
        parser.error("--rates must be > 0")
    if args.steady_seconds <= 0 or args.idle_seconds <= 0:
        parser.error("--steady-seconds and --idle-seconds must be > 0")
    if args.setup_concurrency < 1 or args.max_setup_errors < 1:
        parser.error("--setup-concurrency and --max-setup-errors must be ≥ 1")
    for option, path in (("--before", args.before), ("--after", args.after)):
        if path is not None and not (path / "app").is_dir():
            parser.error(f"{option} {path}: no app/ there")
    return args


if __name__ == "__main__":
    # `kill <pid>` stops the bench like Ctrl+C: the servers it started are stopped too (a bench run
    # in the background of a non-interactive shell ignores SIGINT).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        asyncio.run(main(parse_args()))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(0)
