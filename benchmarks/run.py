"""Run the tidings benchmarks side by side with what a user would otherwise use.

    .venv/bin/python benchmarks/run.py            # the full run (make bench)
    .venv/bin/python benchmarks/run.py --quick    # a smoke run: 1 repetition, small counts
    .venv/bin/python benchmarks/run.py --only B1,B6

Every figure is the median of 5 runs, measured in the same run and on the same
machine as its reference, and shown as a ratio to it. The full run prints a table
and rewrites docs/benchmarks.md; every run writes benchmarks/results/latest.json.
Each case runs in a fresh process. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOCS_PAGE = ROOT / "docs" / "benchmarks.md"
RESULTS = HERE / "results"
CHILD_TIMEOUT = 900

# The cases, in the order they run: (name in cases.CASES, benchmark ids it produces).
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("B1", ("B1",)),
    ("B2", ("B2", "B3")),
    ("B4", ("B4",)),
    ("B5", ("B5",)),
    ("B6", ("B6",)),
    ("B7", ("B7",)),
    ("B8", ("B8",)),
)
ALL_IDS = tuple(bench_id for _, ids in GROUPS for bench_id in ids)

# Which profile explains a missed goal.
PROFILE_FOR = {
    "B1": "publish",
    "B8": "publish",
    "B2": "http-batched",
    "B3": "http",
    "B4": "durable",
    "B5": "file",
}
PROFILE_TITLES = {
    "publish": "publish() to 3 log endpoints (B1's setup)",
    "http-batched": "HTTP delivery, max_batch = 100 (B2's setup)",
    "http": "HTTP delivery, max_batch = 1 (B3's setup)",
    "durable": "durable queue, one publishing thread, HTTP with max_batch = 100 (B4's setup)",
    "file": "file sink, max_batch = 100 (B5's setup)",
}


# -- child processes -----------------------------------------------------------------------


def _child_main(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE))
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s: %(message)s")
    import cases

    scale = cases.QUICK if args.quick else cases.FULL
    result: Any
    if args.case:
        result = cases.CASES[args.case](scale)
    elif args.memory_child:
        result = cases.memory_child(args.memory_child)
    else:
        result = cases.profiles(scale, args.profile.split(","))
    Path(args.out).write_text(json.dumps(result), encoding="utf-8")


def _spawn(arguments: Sequence[str], quick: bool, what: str) -> Any:
    """Run this script in a fresh process with ``arguments``; return its JSON result."""
    with tempfile.TemporaryDirectory(prefix="tidings-bench-") as tmp:
        out = Path(tmp, "result.json")
        command = [sys.executable, str(Path(__file__).resolve()), *arguments, "--out", str(out)]
        if quick:
            command.append("--quick")
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False
        )
        if completed.returncode != 0 or not out.exists():
            tail = "\n".join(completed.stderr.strip().splitlines()[-25:])
            raise RuntimeError(f"{what} failed (exit {completed.returncode}):\n{tail}")
        return json.loads(out.read_text(encoding="utf-8"))


def _memory_runs(scale: Any, quick: bool) -> list[Any]:
    """B7's runs, each in a fresh process, two at a time (each is single-threaded)."""
    arguments = ["--memory-child", str(scale.memory_events)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(_spawn, arguments, quick, f"B7 (run {index + 1})")
            for index in range(scale.reps)
        ]
        return [future.result() for future in futures]


# -- the table -----------------------------------------------------------------------------


def _number(value: float, unit: str) -> str:
    if unit == "events/s":
        return f"{value:,.0f}"
    if unit == "events":
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _figure(row: dict[str, Any]) -> str:
    return f"{_number(row['median'], row['unit'])} {row['unit']}"


def _spread(row: dict[str, Any]) -> str:
    samples = row["samples"]
    if len(samples) < 2:
        return "1 run"
    return f"{_number(min(samples), row['unit'])} - {_number(max(samples), row['unit'])}"


def _ratio(row: dict[str, Any]) -> str:
    return "" if row["ratio"] is None else f"{row['ratio']:.2f}x"


def _met(goal: dict[str, Any]) -> str:
    return "met" if goal["met"] else "NOT MET"


def print_table(results: list[dict[str, Any]], failures: dict[str, str]) -> None:
    width = 64
    for result in results:
        print()
        print(f"{result['id']}  {result['title']}")
        print(f"    {'measurement':<{width}} {'median':>18} {'runs (min - max)':>24} {'ratio':>8}")
        for row in result["rows"]:
            print(
                f"    {row['name']:<{width}} {_figure(row):>18} {_spread(row):>24} {_ratio(row):>8}"
            )
        for row in result["diagnostics"]:
            print(f"    · {row['name']:<{width - 2}} {_figure(row):>18} {_spread(row):>24}")
        for goal in result["goals"]:
            print(f"    goal {goal['text']}: {goal['value']} — {_met(goal)}")
    for bench_id, error in failures.items():
        print(f"\n{bench_id}  FAILED: {error}")
    print(
        "\nratio: on a reference's row, the tidings figure ÷ that reference "
        "(B8: each figure ÷ the 1-endpoint figure)."
    )


# -- the page ------------------------------------------------------------------------------

_INTRO = """\
# Benchmarks

<!-- Generated by benchmarks/run.py (make bench): change the runner, not this page. -->

Each benchmark runs tidings side by side with what a user would otherwise write or
use, in the same run and on the same machine, and reports tidings as a ratio to
it. {runs} The benchmarks live in `benchmarks/` and are not part of the test
suite: nothing here is asserted by a test.

Run them with `make bench` (which installs the `bench` extra, `sentry-sdk` and
`pyinstrument`, and runs `.venv/bin/python benchmarks/run.py`); add `--quick` for
a smoke run and `--only B1,B6` for some of them; `--rewrite-docs` renders this
page again from the results of the last whole run, running nothing. Each case runs in a fresh
process; B2, B3 and B4 post to `benchmarks/receiver.py`, a raw-socket HTTP/1.1
receiver in another process (keep-alive, reads each body by `Content-Length`,
answers `200` with `Content-Length: 0`). Every event is the registry's example
push event (from the distribution documentation).

A per-call cost is a loop of {calls:,} calls divided by {calls:,}, with the
worker threads running: on CPython they share the interpreter lock with the
caller, so the figure includes the time they take to deliver what the loop
publishes.

In the tables, the ratio on a reference's row is the tidings figure divided by
that reference (in B8, each figure divided by the 1-endpoint figure).
"""


def _machine_table(machine: dict[str, str], command: str) -> list[str]:
    return [
        "## The machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {machine['cpu']} |",
        f"| cores | {machine['cores']} |",
        f"| Python | {machine['python']} |",
        f"| system | {machine['os']} |",
        f"| tidings | {machine['tidings']} |",
        f"| references | {machine['references']} |",
        f"| date | {machine['date']} |",
        f"| command | `{command}` |",
        "",
    ]


def _summary(results: list[dict[str, Any]], failures: dict[str, str]) -> list[str]:
    lines = [
        "## Summary",
        "",
        "| id | what | tidings | goal | result | met |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        subject = next(
            (row for row in result["rows"] if row["role"] == "tidings"), result["rows"][0]
        )
        first = True
        for goal in result["goals"]:
            head = (
                f"| [{result['id']}](#{result['id'].lower()}) | {_short(result['title'])} | "
                f"{_figure(subject)} "
                if first
                else "| | | "
            )
            lines.append(f"{head}| {goal['text']} | {goal['value']} | {_met_mark(goal)} |")
            first = False
    for bench_id, error in failures.items():
        lines.append(f"| {bench_id} | failed: {error.splitlines()[0]} | | | | |")
    lines.append("")
    return lines


def _short(title: str) -> str:
    return title.split(":")[0].split(" (")[0]


def _met_mark(goal: dict[str, Any]) -> str:
    return "yes" if goal["met"] else "**no**"


def _section(result: dict[str, Any]) -> list[str]:
    lines = [
        f"## {result['id']}",
        "",
        f"**{result['title']}.**",
        "",
        "| measurement | median | runs (min - max) | ratio |",
        "|---|---:|---:|---:|",
    ]
    for row in result["rows"]:
        name = f"**{row['name']}**" if row["role"] == "tidings" else row["name"]
        lines.append(f"| {name} | {_figure(row)} | {_spread(row)} | {_ratio(row)} |")
    lines.append("")
    for goal in result["goals"]:
        lines.append(f"- Goal {goal['text']}: {goal['value']}, {_met(goal).lower()}.")
    lines.append("")
    lines.extend(f"{note}\n" for note in result["notes"])
    if result["diagnostics"]:
        lines += [
            "Diagnostics (not goals):",
            "",
            "| measurement | median | runs |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| {row['name']} | {_figure(row)} | {_spread(row)} |" for row in result["diagnostics"]
        ]
        lines.append("")
    if result.get("config"):
        lines += ["The configuration:", "", "```toml", result["config"].rstrip(), "```", ""]
    return lines


def _diagnostic(results: list[dict[str, Any]], bench_id: str, key: str) -> float | None:
    for result in results:
        if result["id"] == bench_id:
            for row in (*result["rows"], *result["diagnostics"]):
                if row["key"] == key:
                    return float(row["median"])
    return None


def _floor_text(bench_id: str, results: list[dict[str, Any]]) -> str:
    def value(key: str, of: str = bench_id) -> str:
        found = _diagnostic(results, of, key)
        return "?" if found is None else f"{found:.2f}"

    if bench_id == "B1":
        caller = _diagnostic(results, "B1", "tidings-caller")
        sentry_caller = _diagnostic(results, "B1", "sentry-caller")
        put = _diagnostic(results, "B1", "floor")
        shares = (
            f"Per endpoint the caller's share is {caller / 3:.2f} µs, against "
            f"{sentry_caller:.2f} µs for sentry's submit to its one queue; what separates "
            "the two loops is the delivery, which tidings' workers do while the loop runs "
            "and sentry's worker postpones by sleeping after every job. The goal of 15 x "
            f"the floor allows {15 * put:.2f} µs for three endpoints, less than the "
            "caller's share alone: one Python-level hand-off per endpoint (filter check, "
            "deque append, lock-free counters) costs more than a C-level put. "
            if caller and sentry_caller and put
            else ""
        )
        return (
            f"publish() itself costs the caller {value('tidings-caller')} µs for three "
            f"endpoints (workers held off the interpreter lock); the three workers then "
            f"spend {value('tidings-drain')} µs per event delivering it (max_batch = 1: "
            "one take, one backoff write and one settle per event and endpoint). With "
            "the workers running, that time is taken from the caller's thread. sentry's "
            f"submit costs {value('sentry-caller')} µs plus {value('sentry-drain')} µs "
            f"in its single worker; the floor is one `SimpleQueue.put` in C. {shares}The "
            "profiles below count the calls and lock acquisitions per event on each side."
        )
    if bench_id == "B8":
        return (
            "Each endpoint adds its hand-off in the caller's thread (see the caller "
            "profile) and a worker thread that delivers the event, and the workers' "
            "time is taken from the caller while they run: the slope is roughly the "
            "caller's share per endpoint plus one worker's time per event. The notes "
            "of B8 give the caller's share alone."
        )
    if bench_id == "B2":
        return (
            "The batched loop json-encodes one list of prebuilt dicts per request and "
            "posts it. tidings' worker builds each event's wire view, encodes the "
            "envelope and escapes line breaks in it, builds the headers (webhook-id), "
            "posts through httpx, classifies the status and settles the batch (with a "
            "latency per event for the histogram), while the publishing thread shares "
            "the interpreter lock with it at the start of the run. The worker profile "
            "below shows where a request's time goes besides httpx and json."
        )
    if bench_id == "B3":
        return (
            "Delivery runs in the endpoint's one worker thread: per request it encodes "
            "the envelope, builds the headers (webhook-id), posts through httpx, "
            "classifies the status and settles the event. The worker profile below "
            "shows where a request's time goes beyond httpx itself."
        )
    if bench_id == "B4":
        bare = _diagnostic(results, "B4", "bare-rate")
        memory = _diagnostic(results, "B4", "memory-rate")
        quiet = _diagnostic(results, "B4", "durable-quiet-publish")
        bare_publish = _diagnostic(results, "B4", "bare-publish")
        floor = (
            f"The bare group-commit loop alone commits {bare:,.0f} events/s with 8 threads, "
            f"{bare / memory:.2f}x the memory queue's delivery rate: that is the ceiling "
            "of any queue whose publish() returns only once the event is committed, "
            "before a row is delivered or deleted. "
            if bare and memory
            else ""
        )
        queue_cost = (
            f"With a sink that does no work, a durable publish takes {quiet:,.0f} µs, "
            f"{quiet / bare_publish:.2f}x the bare loop: that is the queue's and the "
            "spool's own cost (each commit is one multi-row INSERT, the worker takes "
            "what this process committed from memory and its deletions join the next "
            "commit). "
            if quiet and bare_publish
            else ""
        )
        return (
            f"{floor}{queue_cost}With HTTP delivery the worker's requests (httpx, the "
            "JSON envelope) run on the same interpreter lock as the eight publishers, "
            "so every commit waits longer for the lock; the worker can only batch what "
            "is already committed (see the mean events per request). The profiles "
            "below show the publishing side and the worker."
        )
    if bench_id == "B5":
        return (
            "The raw loop only json-encodes and appends to a buffered file. tidings "
            "also builds each event's wire view, escapes line breaks, hands each event "
            "to the queue in the caller's thread and settles each batch in the worker."
        )
    return "No profile applies."


def _profile_tables(profile: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for side, label in (("caller", "Caller"), ("workers", "Worker threads")):
        summary = profile.get(side)
        if not summary:
            continue
        lines += [
            f"{label} ({summary['events']:,} events): "
            f"{summary['calls_per_event']:.1f} function calls and "
            f"{summary['locks_per_event']:.1f} lock acquisitions per event.",
            "",
            "| function | calls per published event | share of own time |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| `{row['function']}` | {row['calls_per_event']:.2f} | {row['own_share']:.0%} |"
            for row in summary["top"]
            if row["own_share"] >= 0.005
        ]
        lines.append("")
    return lines


def write_page(
    results: list[dict[str, Any]],
    failures: dict[str, str],
    profiles: dict[str, Any],
    machine: dict[str, str],
    *,
    reps: int,
    calls: int,
    command: str,
) -> None:
    runs = (
        f"Every figure is the median of {reps} runs (the range of the runs is shown beside it)."
        if reps > 1
        else "Every figure is from a single run (a --quick smoke run: small counts)."
    )
    lines = [_INTRO.format(runs=runs, calls=calls)]
    lines += _machine_table(machine, command)
    lines += _summary(results, failures)
    for result in results:
        lines += _section(result)
    missed = [r["id"] for r in results if any(not goal["met"] for goal in r["goals"])]
    if missed:
        lines += [
            "## Where a goal is not met",
            "",
            "Profiles are cProfile runs of the same setups (the caller with the workers "
            "held off the interpreter lock, then the workers draining). cProfile slows "
            "small functions down, so read the shares as a ranking and the calls per "
            "event as exact counts. Blocking waits (an idle worker) are left out; the "
            "wait to enter a `with lock:` block is not a call cProfile sees, so it "
            "shows as own time of the function holding the block. Lock acquisitions "
            "are counted as releases.",
            "",
        ]
        shown: set[str] = set()
        for bench_id in missed:
            lines += [f"### {bench_id}", "", _floor_text(bench_id, results), ""]
            name = PROFILE_FOR.get(bench_id)
            if name and name in profiles and name not in shown:
                shown.add(name)
                lines += [f"Profile: {PROFILE_TITLES[name]}.", ""]
                lines += _profile_tables(profiles[name])
            elif name in shown:
                lines += [f"The profile of {PROFILE_TITLES[name]} is shown above.", ""]
    DOCS_PAGE.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")


# -- main ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 repetition, small counts")
    parser.add_argument("--only", help="comma-separated benchmark ids, e.g. B1,B6")
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="rewrite docs/benchmarks.md after a --quick or --only run too",
    )
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    parser.add_argument(
        "--rewrite-docs",
        action="store_true",
        help="rewrite docs/benchmarks.md from the last run's results "
        "(benchmarks/results/latest.json), running nothing",
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--profile", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.out:
        _child_main(args)
        return 0

    sys.path.insert(0, str(HERE))
    import benchlib
    import cases

    if args.rewrite_docs:
        return _rewrite_docs(cases.FULL)

    scale = cases.QUICK if args.quick else cases.FULL
    wanted = set(ALL_IDS)
    if args.only:
        wanted = {item.strip().upper() for item in args.only.split(",") if item.strip()}
        unknown = sorted(wanted - set(ALL_IDS))
        if unknown:
            parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(ALL_IDS)}")

    machine = benchlib.machine()
    print(
        f"tidings benchmarks: {machine['cpu']}, {machine['cores']}, {machine['python']}, "
        f"{'quick: 1 run, small counts' if args.quick else f'median of {scale.reps} runs'}",
        flush=True,
    )
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    for case, ids in GROUPS:
        chosen = [bench_id for bench_id in ids if bench_id in wanted]
        if not chosen:
            continue
        label = "+".join(ids)
        print(f"  {label} ...", end="", flush=True)
        begun = time.monotonic()
        try:
            if case == "B7":
                produced = cases.memory(scale, _memory_runs(scale, args.quick))
            else:
                produced = _spawn(["--case", case], args.quick, label)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            for bench_id in chosen:
                failures[bench_id] = str(exc)
            print(" FAILED", flush=True)
            continue
        results += [result for result in produced if result["id"] in wanted]
        print(f" {time.monotonic() - begun:.0f} s", flush=True)

    missed = sorted(
        {
            PROFILE_FOR[r["id"]]
            for r in results
            if r["id"] in PROFILE_FOR and any(not goal["met"] for goal in r["goals"])
        }
    )
    profiles: dict[str, Any] = {}
    if missed:
        print(f"  profiles of {', '.join(missed)} ...", end="", flush=True)
        begun = time.monotonic()
        try:
            profiles = _spawn(["--profile", ",".join(missed)], args.quick, "the profiles")
            print(f" {time.monotonic() - begun:.0f} s", flush=True)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            failures["profiles"] = str(exc)
            print(" FAILED", flush=True)

    print_table(results, failures)
    print(f"\ntotal: {time.monotonic() - started:.0f} s")

    command = "benchmarks/run.py" + (" --quick" if args.quick else "")
    if args.only:
        command += f" --only {args.only}"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(
        json.dumps(
            {
                "machine": machine,
                "command": command,
                "reps": scale.reps,
                "calls": scale.calls,
                "results": results,
                "failures": failures,
                "profiles": profiles,
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    full = not args.quick and not args.only
    if not args.no_docs and (full or args.write_docs):
        write_page(
            results,
            failures,
            profiles,
            machine,
            reps=scale.reps,
            calls=scale.calls,
            command=command,
        )
        print(f"wrote {DOCS_PAGE.relative_to(ROOT)}")
    elif not args.no_docs:
        print(f"{DOCS_PAGE.relative_to(ROOT)} left alone (a partial run; --write-docs to force)")
    return 1 if failures else 0


def _rewrite_docs(full: Any) -> int:
    latest = RESULTS / "latest.json"
    try:
        saved = json.loads(latest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        print(f"no results to rewrite from: {latest.relative_to(ROOT)} (run the benchmarks first)")
        return 2
    if "--quick" in saved["command"] or "--only" in saved["command"]:
        print(
            f"the last run was partial ({saved['command']}): run the whole set before "
            "rewriting the page"
        )
        return 2
    write_page(
        saved["results"],
        saved["failures"],
        saved["profiles"],
        saved["machine"],
        reps=saved.get("reps", full.reps),
        calls=saved.get("calls", full.calls),
        command=saved["command"],
    )
    print(f"wrote {DOCS_PAGE.relative_to(ROOT)} from {latest.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
