"""HTTP benchmark: the service against the floor, side by side, on loopback.

The service runs as it is served (`dah-cds serve`: service.serving, gunicorn gthread, 2 workers of 8
threads); the floor (bench/floor_app.py, a bare Flask app that JSON-parses the body and answers one
fixed card) runs under the same gunicorn worker class, workers and threads.  Both are pinned to
CPU 0 with taskset; wrk (Debian package `wrk`) drives them from CPU 1 with the same bodies
(bench/post.lua), one server at a time, the two alternating case by case.  Bodies: scenario cases
of plandefinitions/tests/ with their dates moved to now and padded with extra Observations
(bench/bodies.py), so the rules of the case fire.

For each case and server: p50 and p99 latency (wrk), throughput, and server CPU per request
(utime + stime of the gunicorn master and workers from /proc/<pid>/stat, before and after the
run, divided by the requests answered); the medians over the runs, and service/floor ratios.
Then worker memory (VmRSS, VmHWM) with the content loaded, and the time from start to the first
answer.  Results go to bench/results/http.md (and the raw numbers to http.json).

    .venv/bin/python bench/http_bench.py [--duration 5] [--runs 2] [--quick] [--out bench/results/http.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import protocol_bench  # noqa: E402
from bench.bodies import SCENARIOS, body, case, count_resources  # noqa: E402

BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")
SERVER_CPU, CLIENT_CPU = "0", "1"

# (scenario, resources in prefetch, connections)
SUITE = [
    ("patient-view", 50, 1), ("patient-view", 50, 16),
    ("patient-view", 600, 1), ("patient-view", 600, 16),
    ("order-select", 50, 1), ("order-select", 50, 16),
    ("order-sign", 50, 1), ("order-sign", 50, 16),
    ("patient-view", 5000, 1),
]
QUICK_SUITE = [("patient-view", 50, 1), ("patient-view", 50, 16), ("order-select", 50, 1), ("order-sign", 50, 1),
               ("patient-view", 600, 1)]


# ---- /proc -------------------------------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rfind(")") + 2:].split()  # fields from `state` on (proc(5): field 3)


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return sorted(out)


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = _stat(pid)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (proc(5): fields 14, 15)
    return total / TICK


def memory_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


# ---- servers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    name: str
    port: int
    path: str  # the service id the bodies are posted to is appended
    proc: subprocess.Popen[bytes]
    started: float
    ready_s: float = 0.0
    settled_s: float = 0.0
    start_cpu_s: float = 0.0
    memory: dict[str, Any] = field(default_factory=dict)

    def pids(self) -> list[int]:
        return [self.proc.pid, *children(self.proc.pid)]

    def workers(self) -> list[int]:
        return children(self.proc.pid)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.port}/cds-services/{service}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_service(tmp: Path, log) -> Server:
    port = free_port()
    env = {**os.environ, "CDS_HOST": "127.0.0.1", "CDS_PORT": str(port), "CDS_WORKERS": "2", "CDS_THREADS": "8",
           "CDS_DATABASE_URL": f"sqlite:///{tmp / 'feedback.sqlite3'}"}
    started = time.monotonic()
    proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, str(BIN / "dah-cds"), "serve"], cwd=ROOT, env=env,
                            stdout=log, stderr=log)
    return Server("service", port, "", proc, started)


def start_floor(log) -> Server:
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, str(BIN / "gunicorn"), "--worker-class", "gthread",
                             "--workers", "2", "--threads", "8", "--keep-alive", "5", "--access-logfile", "-",
                             "--bind", f"127.0.0.1:{port}", "bench.floor_app:app"], cwd=ROOT, stdout=log, stderr=log)
    return Server("floor", port, "", proc, started)


def post(url: str, data: bytes, timeout: float = 60) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(server: Server, probe_url: str, probe: bytes | None, timeout: float = 120) -> None:
    """Until the first answer (time to ready), then until every worker's CPU time stands still
    (both workers have loaded the app: the settled time)."""
    deadline = time.monotonic() + timeout
    while True:
        if server.proc.poll() is not None:
            raise SystemExit(f"{server.name} exited with {server.proc.returncode}; see the log")
        try:
            req = urllib.request.Request(probe_url, data=probe, headers={"Content-Type": "application/json"},
                                         method="POST" if probe is not None else "GET")
            with urllib.request.urlopen(req, timeout=5) as response:
                if response.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{server.name} not ready after {timeout} s")
        time.sleep(0.05)
    server.ready_s = time.monotonic() - server.started
    last = -1.0
    while time.monotonic() < deadline:
        used = cpu_seconds(server.workers())
        if used == last and len(server.workers()) >= 2:
            break
        last = used
        time.sleep(0.5)
    server.settled_s = time.monotonic() - server.started - 0.5
    server.start_cpu_s = cpu_seconds(server.pids())


# ---- load --------------------------------------------------------------------------------------


def wrk(server: Server, service: str, body_file: Path, connections: int, seconds: int) -> dict[str, float]:
    pids = server.pids()
    cpu_before = cpu_seconds(pids)
    out = subprocess.run(["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                          "--timeout", "30s", "-s", str(ROOT / "bench" / "post.lua"), server.url(service)],
                         env={**os.environ, "BENCH_BODY": str(body_file)}, capture_output=True, text=True, check=True)
    cpu_after = cpu_seconds(pids)
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise SystemExit(f"wrk gave no result:\n{out.stdout}\n{out.stderr}")
    result = json.loads(line[6:])
    requests = max(1, result["requests"])
    return {"p50_ms": result["p50_us"] / 1000, "p99_ms": result["p99_us"] / 1000,
            "rps": result["requests"] / (result["duration_us"] / 1e6), "requests": result["requests"],
            "cpu_ms": (cpu_after - cpu_before) * 1000 / requests,
            "errors": result["errors"] + result["non_2xx"]}


def check_answer(server: Server, name: str, raw: bytes) -> dict[str, Any]:
    """One call before the load: 200, and from the service the cards of the rules the case expects."""
    service = SCENARIOS[name][1]
    status, answer = post(server.url(service), raw)
    if status != 200:
        raise SystemExit(f"{server.name} answered {status} for {name}: {answer[:500]!r}")
    cards = json.loads(answer)["cards"]
    rules = sorted({(c.get("source", {}).get("topic") or {}).get("code", "") for c in cards} - {""})
    if server.name == "service":
        missing = set(case(name)["expect"].get("present", [])) - set(rules)
        if missing:
            raise SystemExit(f"{name}: the expected rules {sorted(missing)} did not fire (got {rules})")
    return {"cards": len(cards), "rules": rules}


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ---- report ------------------------------------------------------------------------------------


def machine_note() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "?")
    return (f"{os.cpu_count()} CPUs ({model}), {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def ratio(a: float, b: float) -> str:
    if not b or a != a or b != b:
        return "-"
    value = a / b
    return f"{value:.1f}x" if value >= 1 else f"1/{1 / value:.1f}"


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    rows = results["cases"]
    lines = [
        "# HTTP benchmark: the service against the floor",
        "",
        f"Measured {results['date']} on {results['machine']}; load average {results['load_before']} before, "
        f"{results['load_after']} after (the machine is shared: absolute numbers move with its load, the ratios "
        "of one run travel better).",
        "",
        "```sh",
        f"{results['command']}",
        "```",
        "",
        f"Service: `dah-cds serve` (service.serving: gunicorn gthread, 2 workers x 8 threads, access log and call log "
        f"on as served). Floor: `bench/floor_app.py` under the same gunicorn worker class, workers and threads. Both "
        f"pinned to CPU {SERVER_CPU}; wrk (1 thread) on CPU {CLIENT_CPU}; loopback, keep-alive. Medians of "
        f"{args.runs} run(s) x {args.duration:g} s per case and server, the two servers alternating. CPU per request: "
        "utime + stime of the gunicorn master and workers (/proc/<pid>/stat) over the run, per request answered.",
        "",
        "Bodies (`bench/bodies.py`): the scenario case with its dates moved to now, padded with hourly vital-sign and "
        "chemistry Observations (codes no rule reads) to the number of resources shown; before the load, one call "
        "checks that the rules the case expects answer with cards.",
        "",
        "In these numbers: the compiled FHIRPath path (`and`/`or`/`implies` skipping the right operand when the "
        "left one decides; DateTime ± Quantity computed with datetime arithmetic; each where()/exists() "
        "criterion evaluated once; literal arguments checked when compiled; a union of strings kept directly; a "
        "chain from a %variable repeated within one expression computed once per evaluation), no per-response "
        "card schema check, the body read with orjson within the limits, the compiled envelope check, orjson "
        "responses, the issued cards recorded with one INSERT ... ON CONFLICT DO NOTHING per table in SQLite's "
        "write-ahead log (synchronous=NORMAL), each distinct FHIRPath text parsed once at load, a condition's "
        "resources walked only for a trace. Where the service's time goes (cProfile of patient-view, 50 "
        "resources, one whole call through the Flask test client, in process): the engine's `$apply` about 71 % "
        "(FHIRPath evaluation about 59 %), recording the issued cards about 7 %, reading the body within its "
        "limits about 4 %, rendering the cards about 2 %, validating the request about 1 %, Flask, werkzeug and "
        "the test client about 11 %.",
        "",
        "| case | resources | c | service p50 | floor p50 | ratio | service p99 | floor p99 | ratio "
        "| service req/s | floor req/s | ratio | service CPU/req | floor CPU/req | ratio | cards |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        s, f = row["service"], row["floor"]
        lines.append(
            f"| {row['name']} `{row['service_id']}` | {row['resources']} | {row['c']} "
            f"| {s['p50_ms']:.2f} ms | {f['p50_ms']:.2f} ms | {ratio(s['p50_ms'], f['p50_ms'])} "
            f"| {s['p99_ms']:.2f} ms | {f['p99_ms']:.2f} ms | {ratio(s['p99_ms'], f['p99_ms'])} "
            f"| {s['rps']:.0f} | {f['rps']:.0f} | {ratio(s['rps'], f['rps'])} "
            f"| {s['cpu_ms']:.2f} ms | {f['cpu_ms']:.2f} ms | {ratio(s['cpu_ms'], f['cpu_ms'])} "
            f"| {row['cards']} ({', '.join(row['rules'])}) |")
    sizes = [r for r in rows if r["name"] == "patient-view" and r["c"] == 1]
    if len(sizes) > 1:
        base = sizes[0]
        lines += ["", "Cost against patient size (patient-view, c=1):", "",
                  "| resources | body | service p50 | service CPU/req | CPU per 100 resources | growth vs "
                  f"{base['resources']} | floor p50 | floor CPU/req |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in sizes:
            s, f = row["service"], row["floor"]
            growth = s["cpu_ms"] / base["service"]["cpu_ms"] if base["service"]["cpu_ms"] else float("nan")
            lines.append(f"| {row['resources']} | {row['body_kb']:.0f} kB | {s['p50_ms']:.1f} ms "
                         f"| {s['cpu_ms']:.1f} ms "
                         f"| {100 * s['cpu_ms'] / row['resources']:.2f} ms | CPU x{growth:.1f} "
                         f"(resources x{row['resources'] / base['resources']:g}) | {f['p50_ms']:.1f} ms "
                         f"| {f['cpu_ms']:.1f} ms |")
    lines += ["", "Memory and start-up (each worker loads the app itself; VmHWM is the peak over the whole run):", "",
              "| server | time to first answer | time until both workers idle | CPU used to start (all processes) "
              "| worker VmRSS at ready | worker VmRSS at end | worker VmHWM | master VmRSS |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in ("service", "floor"):
        m = results["servers"][name]
        lines.append(f"| {name} | {m['ready_s']:.2f} s | {m['settled_s']:.1f} s | {m['start_cpu_s']:.1f} s | "
                     f"{' / '.join(f'{kb / 1024:.0f}' for kb in m['workers_rss_ready_kb'])} MiB | "
                     f"{' / '.join(f'{kb / 1024:.0f}' for kb in m['workers_rss_end_kb'])} MiB | "
                     f"{' / '.join(f'{kb / 1024:.0f}' for kb in m['workers_hwm_kb'])} MiB | "
                     f"{m['master_rss_kb'] / 1024:.0f} MiB |")
    if results.get("protocol"):
        lines += ["", "Protocol work of one patient-view call, in process (`bench/protocol_bench.py`, medians), as the "
                  "service does it now and (in brackets) as before: reading the body within the limits "
                  "(service.jsonlimits), validating the request (service.hooks.validation), writing the answer:", ""]
        lines += protocol_bench.table(results["protocol"])
        lines += ["", "The in-process figures for large bodies move by several times from run to run on this machine "
                  "(what one parse costs depends on the memory the previous one left: the same orjson call measured "
                  "1.3 ms and 8 ms at 600 resources in two runs minutes apart); the before/now ratio within one run, "
                  "and the server CPU per request above, are the figures to compare."]
    lines += ["", "Targets of issue 12 on this machine:", ""]
    lines += [f"- {t}" for t in targets(rows)]
    return "\n".join(lines) + "\n"


def targets(rows: list[dict[str, Any]]) -> list[str]:
    def find(name: str, resources: int, c: int) -> dict[str, Any] | None:
        return next((r for r in rows if (r["name"], r["resources"], r["c"]) == (name, resources, c)), None)

    out = []
    one = find("patient-view", 50, 1)
    if one:
        r = one["service"]["p50_ms"] / one["floor"]["p50_ms"]
        out.append(f"patient-view, 50 resources, c=1: p50 {r:.1f}x the floor (target: within 5x): "
                   f"{'met' if r <= 5 else 'not met'}; server CPU {one['service']['cpu_ms']:.1f} ms per request "
                   f"(target: under 5 ms): {'met' if one['service']['cpu_ms'] < 5 else 'not met'}.")
    for name, resources in (("patient-view", 50), ("patient-view", 600), ("order-select", 50), ("order-sign", 50)):
        row = find(name, resources, 16)
        if row:
            share = row["service"]["rps"] / row["floor"]["rps"]
            p99 = row["service"]["p99_ms"] / row["floor"]["p99_ms"]
            out.append(f"{name}, {resources} resources, c=16: throughput {share:.2f} of the floor's (target: at "
                       f"least 0.25): {'met' if share >= 0.25 else 'not met'}; p99 {p99:.1f}x the floor's (target: "
                       f"under 10x): {'met' if p99 < 10 else 'not met'}.")
    sizes = [r for r in rows if r["name"] == "patient-view" and r["c"] == 1]
    if len(sizes) > 1:
        base = sizes[0]
        worst = max((r["service"]["cpu_ms"] / base["service"]["cpu_ms"]) / (r["resources"] / base["resources"])
                    for r in sizes[1:])
        out.append(f"cost against size: CPU per request grows at most {worst:.2f}x as fast as the resources "
                   f"(target: at most linear, 1.0 or less): {'met' if worst <= 1.0 else 'not met'}.")
    return out


# ---- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per run (default 5)")
    parser.add_argument("--runs", type=int, default=2, help="runs per case and server; medians (default 2)")
    parser.add_argument("--quick", action="store_true", help="1 run x 1 s of a smaller suite, no warm-up")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "http.md")
    parser.add_argument("--from-json", type=Path, help="only write the report again from a run's .json")
    args = parser.parse_args()
    if args.from_json:
        results = json.loads(args.from_json.read_text(encoding="utf-8"))
        args.duration, args.runs = results["duration_s"], results["runs"]
        args.out.write_text(report(results, args), encoding="utf-8")
        return 0
    if args.quick:
        args.duration, args.runs = 1, 1
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install {'wrk' if tool == 'wrk' else 'util-linux'}")
    suite = QUICK_SUITE if args.quick else SUITE
    command = "python bench/http_bench.py " + " ".join(sys.argv[1:])
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])

    with tempfile.TemporaryDirectory(prefix="http-bench-") as tmpdir:
        tmp = Path(tmpdir)
        now = datetime.now(UTC)
        bodies = {}
        for name, size, _ in suite:
            if (name, size) not in bodies:
                request = body(name, size, now)
                path = tmp / f"{name}-{size}.json"
                raw = json.dumps(request).encode()
                path.write_bytes(raw)
                bodies[name, size] = (path, count_resources(request), len(raw) / 1024)
        log = (tmp / "servers.log").open("wb")
        servers: dict[str, Server] = {}
        try:
            servers["service"] = start_service(tmp, log)  # one at a time: the start-up is measured alone
            wait_ready(servers["service"], f"http://127.0.0.1:{servers['service'].port}/cds-services", None)
            servers["floor"] = start_floor(log)
            wait_ready(servers["floor"], servers["floor"].url("probe"), b"{}")
            for server in servers.values():
                server.memory["workers_rss_ready_kb"] = [memory_kb(p)["VmRSS"] for p in server.workers()]
            checked = {}
            for name, size, _ in suite:
                raw = bodies[name, size][0].read_bytes()
                for server in servers.values():
                    checked[server.name, name, size] = check_answer(server, name, raw)
            warmed: set[tuple[str, str, int]] = set()
            samples: dict[tuple[str, int, int, str], list[dict[str, float]]] = {}
            for run in range(args.runs):
                for name, size, c in suite:
                    path = bodies[name, size][0]
                    for server in servers.values():
                        service = SCENARIOS[name][1]
                        if not args.quick and (server.name, name, size) not in warmed:
                            wrk(server, service, path, c, 1)
                            warmed.add((server.name, name, size))
                        result = wrk(server, service, path, c, args.duration)
                        if result["errors"]:
                            raise SystemExit(f"{server.name} {name} {size} c={c}: {result['errors']} errors")
                        samples.setdefault((name, size, c, server.name), []).append(result)
                        print(f"run {run + 1} {name:12} {size:5} c={c:<2} {server.name:7} "
                              f"p50 {result['p50_ms']:8.2f} ms p99 {result['p99_ms']:8.2f} ms "
                              f"{result['rps']:7.1f} req/s cpu {result['cpu_ms']:7.2f} ms", flush=True)
            for server in servers.values():
                workers = server.workers()
                server.memory["workers_rss_end_kb"] = [memory_kb(p)["VmRSS"] for p in workers]
                server.memory["workers_hwm_kb"] = [memory_kb(p)["VmHWM"] for p in workers]
                server.memory["master_rss_kb"] = memory_kb(server.proc.pid)["VmRSS"]
        finally:
            for server in servers.values():
                server.stop()
            log.close()

    protocol = protocol_bench.measure((50, 600) if args.quick else (50, 600, 5000))
    rows = []
    for name, size, c in suite:
        row: dict[str, Any] = {"name": name, "service_id": SCENARIOS[name][1], "resources": bodies[name, size][1],
                               "c": c, "body_kb": bodies[name, size][2],
                               **checked["service", name, size]}
        for server in ("service", "floor"):
            runs = samples[name, size, c, server]
            row[server] = {k: median([r[k] for r in runs]) for k in ("p50_ms", "p99_ms", "rps", "cpu_ms")}
            row[server]["requests"] = sum(r["requests"] for r in runs)
        rows.append(row)
    results = {"date": now.strftime("%Y-%m-%d %H:%M UTC"), "machine": machine_note(), "command": command,
               "load_before": load_before, "load_after": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
               "duration_s": args.duration, "runs": args.runs, "cases": rows, "protocol": protocol,
               "servers": {s.name: {"ready_s": s.ready_s, "settled_s": s.settled_s, "start_cpu_s": s.start_cpu_s,
                                    **s.memory}
                           for s in servers.values()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(results, args), encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
