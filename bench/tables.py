"""The benchmark tables of the docs, made from bench/results/*.json.

Each table has a name and reads one or more result files. A doc holds a table between two
marker comments, and `python -m bench.report` rewrites what is between them:

    <!-- bench:boot -->
    | stage | median ms |
    ...
    <!-- /bench:boot -->

So a number in a table is always the one in the committed result file: a benchmark run
rewrites its JSON, `python -m bench.report` the tables, and `tests/test_bench_report.py`
fails while the two disagree. What a table means, and what to read into it, is the
prose around it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

Result = dict[str, Any]


class Results:
    """The result files of one directory: ``load("boot")`` is its boot.json."""

    def __init__(self, directory: Path = RESULTS) -> None:
        self.directory = directory

    def __call__(self, name: str) -> Result:
        result: Result = json.loads((self.directory / f"{name}.json").read_text(encoding="utf-8"))
        return result

    def names(self) -> list[str]:
        return sorted(path.stem for path in self.directory.glob("*.json"))


Load = Results


# -- formatting ------------------------------------------------------------------------------


def table(header: Sequence[str], align: str, rows: Iterable[Sequence[object]]) -> str:
    """A markdown table; ``align`` has one letter a column: l(eft) or r(ight)."""
    assert len(align) == len(header)
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def f2(value: float) -> str:
    return f"{value:.2f}"


def f1(value: float) -> str:
    return f"{value:.1f}"


def whole(value: float) -> str:
    """A count or a time in whole units, with thousands separators."""
    return f"{round(value):,}"


def pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}%}"


def seconds(ms: float) -> str:
    return f"{ms / 1000:.1f} s"


def megabytes(size: float) -> str:
    return f"{size / 1e6:.0f} MB"


def met(ok: bool) -> str:
    return "✓" if ok else "✗ (not met)"


# -- the tables ------------------------------------------------------------------------------


def threads(load: Load) -> str:
    result = load("threads")
    rows = [
        (runtime, count, f2(s["p50"]), f2(s["p95"]))
        for runtime, key in (
            ("onnxruntime-web", "browser_ms"),
            ("onnxruntime (native)", "native_ms"),
        )
        for count, s in sorted(result[key].items(), key=lambda item: int(item[0]))
    ]
    return table(["runtime", "threads", "p50 ms", "p95 ms"], "lrrr", rows)


BOOT_STAGES = {
    "python": "start Python (a revisit: restore the snapshot)",
    "unpack": "*of which: write the wheels' files*",
    "numpy": "import numpy (its shared libraries load here)",
    "packages": "import py_agent",
    "model": "load model and data (what is left of it when Python asks)",
}
BOOT_VISITS = {
    "first": "first visit",
    "revisit": "revisit",
    "revisit_no_snapshot": "revisit, snapshot deleted",
}


def boot(load: Load) -> str:
    result = load("boot")
    median = result["median_ms"]
    rows: list[Sequence[object]] = [
        (label, *(whole(median[visit][k]) for visit in BOOT_VISITS))
        for k, label in BOOT_STAGES.items()
    ]
    rows.append(
        ("**boot, total**", *(f"**{whole(median[visit]['total'])}**" for visit in BOOT_VISITS))
    )
    rows.append(("navigation → ready", *(whole(median[visit]["ready"]) for visit in BOOT_VISITS)))
    rows.append(
        (
            "*model, in ORT's worker from the start:* download / sha256 / session create",
            *(
                " / ".join(
                    whole(median[visit][k])
                    for k in ("model_download", "model_verify", "model_create")
                )
                for visit in BOOT_VISITS
            ),
        )
    )
    header = [f"stage, ms (median of {len(result['runs'])})", *BOOT_VISITS.values()]
    return table(header, "l" + "r" * len(BOOT_VISITS), rows)


PWA_LOADS = {
    "cold": "first visit, from the network",
    "service_worker": "reload, from the service worker",
    "offline": "reload, server stopped and network cut",
}


def pwa(load: Load) -> str:
    result = load("pwa")
    loads = [(label, result["median"][key]) for key, label in PWA_LOADS.items()]
    loads.append(
        ("first visit, incognito (memory-only HTTP cache)", result["incognito_first_visit"])
    )
    rows = [
        (
            label,
            seconds(m["ready_ms"]),
            seconds(m["boot_ms"]),
            seconds(m["tasks_shown_ms"]) if m.get("tasks_shown_ms") is not None else "",
            seconds(m["offline_ready_ms"]) if "offline_ready_ms" in m else "",
            whole(m["bytes"]),
            whole(m["failed_requests"]) if "failed_requests" in m else "",
        )
        for label, m in loads
    ]
    header = [
        "load",
        "time to ready",
        "of which the boot",
        "tasks on screen",
        "works offline at",
        "bytes downloaded",
        "failed requests",
    ]
    memory = result["median"]["service_worker"]["worker_memory_bytes"]
    return (
        table(header, "lrrrrrr", rows)
        + f"\n\nThe agent worker's memory after a revisit's boot: {memory / 2**20:.0f} MiB"
        + " (measureUserAgentSpecificMemory)."
        + f" The dist measured: {whole(result['dist_bytes'])} bytes."
    )


EMBED_RUNTIMES = {
    "py_agent": "(a) py_agent, browser worker",
    "ort-web": "(b) onnxruntime-web, run only",
    "tjs": "(c) transformers.js",
    "native": "(d) native onnxruntime",
}


def _embed_runs(result: Result) -> dict[tuple[str, int], Result]:
    return {(run["runtime"], int(run["threads"])): run for run in result["runs"]}


def embed(load: Load) -> str:
    result = load("embed")
    rows = []
    for run in result["runs"]:
        runtime = run["runtime"]
        batch = run["batch_32_sentences_per_s"]
        throughput = f"{whole(run['singles_32_sentences_per_s'])} / " + (
            "n/a" if batch is None else whole(batch)
        )
        create = whole(run["create_ms"]) + {
            "py_agent": " (at boot)",
            "tjs": " (whole pipeline)",
        }.get(runtime, "")
        memory = run["memory"]
        if "rss_delta_bytes" in memory:
            used = f"+{megabytes(memory['rss_delta_bytes'])} RSS"
        else:
            used = megabytes(memory["bytes"]) + (" page" if memory.get("worker_bytes") else "")
        rows.append(
            (
                EMBED_RUNTIMES[runtime],
                run["threads"],
                f2(run["latency_ms"]["p50"]),
                f2(run["latency_ms"]["p95"]),
                throughput,
                create,
                used,
            )
        )
    header = [
        "runtime",
        "threads",
        "p50 ms",
        "p95 ms",
        "32 sentences, sent/s: singles / padded batch",
        "session create ms",
        "memory",
    ]
    return table(header, "lrrrrrl", rows)


def embed_ratios(load: Load) -> str:
    runs = _embed_runs(load("embed"))
    counts = sorted({count for _, count in runs})

    def ratio(a: str, b: str, count: int) -> str:
        return f2(runs[a, count]["latency_ms"]["p50"] / runs[b, count]["latency_ms"]["p50"])

    rows = [
        (
            count,
            ratio("py_agent", "ort-web", count),
            ratio("py_agent", "tjs", count),
            ratio("py_agent", "native", count),
        )
        for count in counts
    ]
    return table(["threads", "(a) / (b)", "(a) / (c)", "(a) / (d)"], "rrrr", rows)


def embed_profile(load: Load) -> str:
    profile = load("embed")["profile_py_agent_ms"]
    counts = sorted(profile, key=int)
    steps = list(profile[counts[0]])
    rows = [(step, *(f"{profile[c][step]['p50']:.3f}" for c in counts)) for step in steps]
    header = [
        "one call of py_agent's encoder",
        *(f"p50 ms, {c} thread{'s' * (c != '1')}" for c in counts),
    ]
    return table(header, "l" + "r" * len(counts), rows)


def agent(load: Load) -> str:
    result = load("agent")
    notes = whole(result["notes_stored"])
    rows = []
    for key, label, target in (
        (
            "local_turn_ms",
            "local turn: text → reply incl. the IndexedDB commit (every utterance new)",
            20.0,
        ),
        ("local_turn_cached_ms", "local turn, utterance in the inference cache", None),
        (
            "note_search_turn_ms",
            f"note.search turn over {notes} stored notes (embed question + search + commit)",
            None,
        ),
        ("note_search_step_ms", f"the search step alone over {notes} notes", 10.0),
    ):
        s = result[key]
        goal = "" if target is None else f"p50 ≤ {target:g} {met(s['p50'] <= target)}"
        rows.append((label, f2(s["p50"]), f2(s["p95"]), goal))
    rows.append(
        (
            f"boot to ready with {notes} notes in IndexedDB",
            whole(result["boot_with_notes_ms"]),
            "",
            "",
        )
    )
    stored = result["boot_with_notes_stored"]
    rows.append(
        (
            f"navigation → ready, {stored['notes']:,} notes stored "
            f"(`--stored-boot-only`, median of {stored['runs']})",
            whole(stored["median_ms"]),
            "",
            f"≤ 2,000 {met(stored['median_ms'] <= 2000)}",
        )
    )
    return table(["measure", "p50 ms", "p95 ms", "target"], "lrrl", rows)


def sync(load: Load) -> str:
    result = load("sync")
    t, c = result["throughput"], result["concurrent"]
    end_to_end = t["end_to_end_ops_per_s"]
    rows = [
        (
            f"one device pushes {whole(t['ops'])} ops (batches of 1,000)",
            f"{whole(t['push_ops_per_s'])} ops/s",
            "",
        ),
        ("another device pulls them (pages of 500)", f"{whole(t['pull_ops_per_s'])} ops/s", ""),
        (
            "push + pull end to end",
            f"{whole(end_to_end)} ops/s",
            f"≥ 10,000 {met(end_to_end >= 10_000)}",
        ),
        (
            f"{c['devices']} devices push {c['ops_per_device']} ops each, all at once",
            f"p50 {whole(c['latency_ms']['p50'])} ms, p99 {whole(c['p99_ms'])} ms",
            f"p99 ≤ 250 ms {met(c['p99_ms'] <= 250)}",
        ),
    ]
    return table([f"measure (median of {result['runs']} runs)", "result", "target"], "lrr", rows)


def live_sync(load: Load) -> str:
    result = load("live_sync")
    live, target = result["live_ms"], result["target_p95_ms"]
    rows = [
        (
            f"live stream ({live['n']} changes)",
            whole(live["p50"]),
            whole(live["p95"]),
            f"p95 ≤ {whole(target)} ms {met(live['p95'] <= target)}",
        ),
        *(
            (f"*by then: {step}*", whole(result[key]["p50"]), whole(result[key]["p95"]), "")
            for step, key in (
                ("the write on A committed", "write_ms"),
                ("B's stream said the space changed", "heard_ms"),
                ("B pulled it (its status has the new revision)", "pulled_ms"),
                ("A's push answered (the server tells B first)", "pushed_ms"),
            )
        ),
    ]
    polling = result["polling_ms"]
    if polling is not None:
        rows.append(
            (
                f"stream refused: periodic pull only ({polling['n']} changes)",
                whole(polling["p50"]),
                whole(polling["p95"]),
                "",
            )
        )
    return table(["write on A → visible on B", "p50 ms", "p95 ms", "target"], "lrrl", rows)


def state_reads(load: Load) -> str:
    """GET /state of a large space, before and after it was paged and built in a worker."""
    result = load("state_reads")
    before, after = result["before"], result["after"]
    runs = (before, after)

    def answers(run: Result) -> str:
        return f"{whole(run['pages'])} of {megabytes(run['bytes'] / run['pages'])}"

    rows = [
        ("answers to read the whole state", *(answers(run) for run in runs)),
        (
            "whole state, first read after a restart",
            *(f"{f2(r['whole_read_cold_s'])} s" for r in runs),
        ),
        ("whole state, read again", *(f"{f2(r['whole_read_warm_s'])} s" for r in runs)),
        *(
            (
                f"`/healthz` while two clients loop on it, {name}",
                *(f"{f1(r['healthz_under_two_readers_ms'][key])} ms" for r in runs),
            )
            for name, key in (("median", "median"), ("p95", "p95"), ("max", "max"))
        ),
        (
            "`/healthz` during the first read after a restart, max",
            *(f"{f1(r['healthz_during_cold_read_ms']['max'])} ms" for r in runs),
        ),
        ("load average (1 min) when measured", *(f2(r["load_average"]) for r in runs)),
    ]
    header = [
        f"{whole(result['ops'])} ops of ~1 KB",
        f"before (`{before['commit']}`)",
        f"after (`{after['commit']}`)",
    ]
    return table(header, "lrr", rows)


FAILED = {"timeout": "timed out", "reset": "reset", "refused": "refused"}


def connection_flood(load: Load) -> str:
    """/healthz and the server's log under 1,000 idle or slow connections, before and after
    the connection guard."""
    result = load("connection_flood")
    before, after = result["before"], result["after"]
    runs = (before, after)

    def answered(probes: Result) -> str:
        failed = ", ".join(
            f"{whole(count)} {FAILED.get(how, f'answered {how}')}"
            for how, count in sorted(probes["failed"].items())
        )
        return f"{whole(probes['ok'])} of {whole(probes['n'])}" + (f" ({failed})" if failed else "")

    def latency(probes: Result) -> str:
        ms = probes["ms"]
        return "—" if ms is None else f"{f1(ms['median'])} / {f1(ms['p95'])} / {f1(ms['max'])} ms"

    def log(scenario: Result) -> str:
        lines = scenario["out_of_system_resource_lines"]
        size = scenario["log_growth_bytes"]
        grown = megabytes(size) if size >= 1e6 else f"{f1(size / 1e3)} KB"
        return grown + (f", {whole(lines)} lines 'out of system resource'" if lines else "")

    rows: list[Sequence[object]] = []
    for key, label in (
        ("default_limit", f"{whole(before['scenarios']['default_limit']['open_files'])} files"),
        ("small_limit", f"{whole(result['small_open_files'])} files"),
    ):
        scenarios = [run["scenarios"][key] for run in runs]
        rows += [
            (f"{label}: flood opened in", *(f"{f1(s['flood_open_s'])} s" for s in scenarios)),
            (f"{label}: `/healthz` answered 200", *(answered(s["healthz"]) for s in scenarios)),
            (
                f"{label}: `/healthz` median / p95 / max",
                *(latency(s["healthz"]) for s in scenarios),
            ),
            (
                f"{label}: `/healthz` answered 200, 15 s on",
                *(answered(s["healthz_after_15s"]) for s in scenarios),
            ),
            (
                f"{label}: flood connections closed by the server after 15 s / 65 s",
                *(
                    f"{whole(s['closed_at_15s']['total'])} / {whole(s['closed_at_65s']['total'])}"
                    for s in scenarios
                ),
            ),
            (f"{label}: server log grew by", *(log(s) for s in scenarios)),
        ]
    rows.append(("load average (1 min) when measured", *(f2(r["load_average"]) for r in runs)))
    header = [
        f"{whole(result['flood'])} connections from one address, open-file limit",
        f"before (`{before['commit']}`)",
        f"after (`{after['commit']}`)",
    ]
    return table(header, "lrr", rows)


def space_memory(load: Load) -> str:
    """The server's resident memory with ~59 MB of ops in one space or spread over several,
    before and after the quotas and the state worker's bounded cache."""
    result = load("space_memory")
    before, after = result["before"], result["after"]
    runs = (before, after)

    def resident(taken: Result) -> str:
        server, children = taken["server"], taken["children"]
        if not children:
            return megabytes(server)
        return f"{megabytes(server)} + {megabytes(children)} = {megabytes(server + children)}"

    def growth(run: Result) -> str:
        taken, idle = run["rss_after_read"], run["rss_idle"]
        grown = taken["server"] + taken["children"] - idle["server"] - idle["children"]
        return f"{grown / 1e6:+.0f} MB ({f1(grown / run['wire_bytes'])} times the wire size)"

    rows: list[Sequence[object]] = []
    for key in ("one_space", "many_spaces", "past_the_cache"):
        scenarios = [run[key] for run in runs]
        spaces = scenarios[0]["spaces"]
        label = "1 space" if spaces == 1 else f"{spaces} spaces"
        rows += [
            (
                f"{label}: ops pushed (wire)",
                *(f"{whole(s['ops'])} ({megabytes(s['wire_bytes'])})" for s in scenarios),
            ),
            (f"{label}: RSS idle", *(resident(s["rss_idle"]) for s in scenarios)),
            (
                f"{label}: RSS after the pushes",
                *(resident(s["rss_after_pushes"]) for s in scenarios),
            ),
            (
                f"{label}: RSS after reading each whole state (server + its child processes)",
                *(resident(s["rss_after_read"]) for s in scenarios),
            ),
            (f"{label}: growth over idle after the reads", *(growth(s) for s in scenarios)),
        ]
    rows.append(("load average (1 min) when measured", *(f2(r["load_average"]) for r in runs)))
    header = ["~1 KB ops", f"before (`{before['commit']}`)", f"after (`{after['commit']}`)"]
    return table(header, "lrr", rows)


def infer(load: Load) -> str:
    result = load("infer")
    rows = []
    for key, label in (("batched", "micro-batched"), ("unbatched", "one request per run")):
        single, busy = result[key]["single_ms"], result[key]["concurrent"]
        rows.append(
            (
                label,
                f"{f1(single['p50'])} / {f1(single['p95'])}",
                whole(busy["requests_per_s"]),
                f"{whole(busy['latency_ms']['p50'])} / {whole(busy['latency_ms']['p95'])}",
                f1(busy["mean_batch"]),
            )
        )
    clients = result["batched"]["concurrent"]["clients"]
    header = [
        "server",
        "single p50 / p95 ms",
        f"{clients} clients: requests/s",
        "p50 / p95 ms",
        "mean batch",
    ]
    return table(header, "lrrrr", rows)


def generative(load: Load) -> str:
    result = load("generative")
    rows = [
        (q["kind"], q["question"], whole(q["ttft_ms"]), whole(q["total_ms"]), q["tokens"])
        for q in result["questions"]
    ]
    overall = result["overall"]
    summary = (
        f"Medians over all questions: first token {whole(overall['ttft_ms_median'])} ms, "
        f"{f1(overall['tokens_per_s_median'])} tokens/s; the server started in "
        f"{result['backend']['startup_s']} s."
    )
    header = ["kind", "question", "first token ms", "total ms", "tokens"]
    return table(header, "llrrr", rows) + "\n\n" + summary


UNDERSTANDING_SETS = {"test": "the first session's split"}


def understanding(load: Load) -> str:
    result = load("understanding")
    tau = result["threshold"]["chosen"]
    rows = []
    for name, modes in result["sets"].items():
        local, cloud, cascade = modes["local"], modes["cloud"], modes["cascade"]
        note = UNDERSTANDING_SETS.get(name)
        rows.append(
            (
                f"{name} ({local['n']}{', ' + note if note else ''})",
                pct(local["accuracy"]),
                pct(cloud["accuracy"]),
                f"{pct(cascade['accuracy'])} ({pct(cascade['fallback_rate'])})",
                pct(local["confident_wrong"]),
                " / ".join(f"{m['macro_f1']:.3f}" for m in (local, cloud, cascade)),
            )
        )
    header = [
        "set",
        "device (int8)",
        "server model",
        f"cascade at τ = {tau} (sent)",
        "confident & wrong",
        "macro-F1 device / server / cascade",
    ]
    return table(header, "lrrrrr", rows)


def understanding_targets(load: Load) -> str:
    """Issue 11's targets, on the held-out split."""
    result = load("understanding")
    local, cloud, cascade = (result["sets"]["heldout"][m] for m in ("local", "cloud", "cascade"))

    def gain(mode: Result) -> float:
        return float((mode["accuracy"] - local["accuracy"]) * 100)

    def lowest(recall: dict[str, float]) -> tuple[str, float]:
        return min(recall.items(), key=lambda item: item[1])

    worst, worst_cascade = lowest(local["recall"]), lowest(cascade["recall"])
    sent, wrong, dates = cascade["fallback_rate"], local["confident_wrong"], result["dates"]
    dated = (local["due_accuracy"], local["repeat_accuracy"], dates["due"])
    rows = [
        (
            "device accuracy, macro-F1",
            "≥ 92%, ≥ 0.90",
            f"{pct(local['accuracy'])}, {local['macro_f1']:.3f} "
            + met(local["accuracy"] >= 0.92 and local["macro_f1"] >= 0.90),
        ),
        (
            "server model alone",
            "≥ device + 4 points",
            f"{pct(cloud['accuracy'])}: {gain(cloud):+.1f} {met(gain(cloud) >= 4)}",
        ),
        (
            "cascade at τ chosen on valid",
            "≥ device + 3 points, ≤ 20% sent",
            f"{pct(cascade['accuracy'])}: {gain(cascade):+.1f}, {pct(sent)} sent "
            + met(gain(cascade) >= 3 and sent <= 0.20),
        ),
        (
            "confident and wrong (confidence ≥ τ, wrong)",
            "≤ 3%",
            f"{pct(wrong)} ({round(wrong * local['n'])} of {local['n']}) {met(wrong <= 0.03)}",
        ),
        (
            "every intent's recall",
            "≥ 85%",
            f"device ≥ {pct(worst[1])} ({worst[0]}), cascade ≥ {pct(worst_cascade[1])} "
            f"({worst_cascade[0]}) {met(min(worst[1], worst_cascade[1]) >= 0.85)}",
        ),
        (
            "due dates and repeat rules on dated requests",
            "100%",
            f"{pct(dated[0])} of {local['due_n']} (rules {pct(dated[1])} of {local['repeat_n']}); "
            f"`data/eval/dates.jsonl` {pct(dated[2])} of {dates['n']} {met(min(dated) == 1)}",
        ),
    ]
    return table(["measure (held out)", "target", "measured"], "lll", rows)


def understanding_slots(load: Load) -> str:
    result = load("understanding")
    heldout = result["sets"]["heldout"]["local"]
    hard = result["retrieval_hard"]
    rows = [
        (
            f"titles (held out, {heldout['title_n']} lines that state one)",
            pct(heldout["title_accuracy"]),
        ),
        (f"lists (held out, {heldout['list_n']})", pct(heldout["list_accuracy"])),
        (f"note texts (held out, {heldout['note_text_n']})", pct(heldout["note_text_accuracy"])),
        ("note search top-1, `data/eval/retrieval.jsonl`", pct(result["retrieval"]["top1"])),
        ("note search top-1, `data/eval/retrieval_hard.jsonl`", pct(hard["top1"])),
        (f"task targets right (`retrieval_hard`, {hard['target_n']})", pct(hard["targets"])),
        ("task targets: asked which one first", pct(hard["asked"])),
        ("task targets: acted on a wrong task", pct(hard["wrong_action"])),
    ]
    return table(["slot or search", "right"], "lr", rows)


def _details(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(
            f"{key} ({_details(item)})" if isinstance(item, dict) else f"{key} {_details(item)}"
            for key, item in value.items()
        )
    if isinstance(value, list):
        if len(value) > 4 and all(isinstance(item, int | float) for item in value):
            return f"{value[0]} … {value[-1]} ({len(value)} values)"
        return "[" + "; ".join(_details(item) for item in value) + "]"
    return str(value)


def network(load: Load) -> str:
    result = load("network")
    rows = [
        (f"`{s['scenario']}`", s["result"], f1(s["seconds"]), _details(s["details"]))
        for s in result["scenarios"]
    ]
    total = sum(s["seconds"] for s in result["scenarios"])
    return (
        table(["scenario", "result", "seconds", "what it measured"], "llrl", rows)
        + f"\n\nRun of {result['generated_at'][:10]}: {len(rows)} scenarios, {f1(total)} s."
    )


def machines(load: Load) -> str:
    """Where and when each result was measured."""
    rows = []
    for name in load.names():
        machine = load(name).get("machine")
        if machine is None:  # written by another tool (py-agent eval's cascade curves)
            continue
        chromium = machine["chromium"]  # "Chromium 156.0.8078.79 built on …", or "not installed"
        if chromium.startswith("Chromium "):
            chromium = chromium.split(" ")[1]
        rows.append(
            (f"`{name}.json`", machine["date"][:10], machine["cpus"], machine["python"], chromium)
        )
    return table(["result", "measured", "cores", "Python", "Chromium"], "llrll", rows)


TABLES: dict[str, Callable[[Load], str]] = {
    "threads": threads,
    "boot": boot,
    "pwa": pwa,
    "embed": embed,
    "embed-ratios": embed_ratios,
    "embed-profile": embed_profile,
    "agent": agent,
    "sync": sync,
    "live-sync": live_sync,
    "state-reads": state_reads,
    "connection-flood": connection_flood,
    "space-memory": space_memory,
    "infer": infer,
    "generative": generative,
    "understanding": understanding,
    "understanding-targets": understanding_targets,
    "understanding-slots": understanding_slots,
    "network": network,
    "machines": machines,
}
