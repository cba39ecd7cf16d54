"""Agent turns in the browser, note search over 10,000 stored notes, and booting with them.

    python -m bench.agent [--notes 10000] [--seconds 5] [--runs 5] [--stored-boot-only]

(1) A local turn: text → reply through the page's RPC, including the worker's
IndexedDB commit, after a 2 s warm-up, cycling through everyday requests.
(2) Note search: 10,000 notes (generated from templates, embedded natively with
the same int8 model) are written into the page's IndexedDB before the app
boots; then whole note.search turns are timed, and the search step alone
inside the worker.
(3) Boot with those notes stored: once the first boot has migrated them (and found
their embeddings), the page is reloaded ``--runs`` times, each timed from navigation
to ``document.body.dataset.state === 'ready'``, with the worker's stage timings
(``window.pyAgentBoot``). ``--stored-boot-only`` measures only this, keeping the rest
of the results file as it was.

Writes bench/results/agent.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from playwright.sync_api import Page, sync_playwright

from py_agent.encoder import load_encoder
from py_agent.platform import inference_runtime
from py_agent.state import embedding_key
from tools.harness import ROOT, ServerProcess, launch_chromium, wait_for_boot

from . import report
from .tables import RESULTS

NOW = "2026-11-18T10:00:00+01:00"
# The notes are seeded in the schema-2 layout (a record per note); the app migrates
# them to sync ops on its first boot, as it would a user's existing data.
SEED_SCHEMA = 2
TURNS = [
    "what's on my list?",
    "remind me to water the plants tomorrow at 9am",
    "show overdue tasks",
    "hi",
    "help",
    "what's the weather in paris",
    "what's due this week?",
]
QUERIES = [
    "what's the wifi password?",
    "where did I park?",
    "when is Anna's birthday?",
    "what's the gate code",
    "which plumber did we use",
]
SUBJECTS = ["wifi", "garage", "gate", "locker", "bike lock", "office door", "safe", "alarm"]
PEOPLE = ["Anna", "Ben", "Chloé", "Dmitri", "Eve", "Farid", "Grace", "Hiro", "Ines", "Jon"]
TEMPLATES = [
    "the {s} code is {n}",
    "{p}'s birthday is on the {d}th",
    "parked on level {d}, spot {n}",
    "{p} recommended the plumber at {n} Main Street",
    "the {s} password changed to hunter{n}",
    "{p} likes {s} jokes",
    "meeting notes {n}: {p} will send the budget",
    "idea {n}: a {s} for {p}",
]

SEED_DB = """async ([notes, embeddings, schema]) => {
    const db = await new Promise((resolve, reject) => {
        const request = indexedDB.open('py_agent', 1);
        request.onupgradeneeded = () => {
            for (const name of ['tasks', 'notes', 'messages', 'embeddings', 'meta']) {
                request.result.createObjectStore(name);
            }
        };
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
    });
    const tx = db.transaction(['notes', 'embeddings', 'meta'], 'readwrite');
    for (const note of notes) tx.objectStore('notes').put(note, note.id);
    for (const record of embeddings) tx.objectStore('embeddings').put(record, record.key);
    tx.objectStore('meta').put({ version: schema }, 'schema');
    await new Promise((resolve, reject) => {
        tx.oncomplete = resolve;
        tx.onerror = () => reject(tx.error);
    });
    db.close();
    return notes.length;
}"""

# When the page first says it is ready, from navigation start (installed before each load).
MARK_READY = """new MutationObserver(() => {
    if (document.body?.dataset.state === 'ready' && window.pyAgentReadyAt === undefined) {
        window.pyAgentReadyAt = performance.now();
    }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-state'] });"""

# unique=true appends a counter so no utterance repeats: every turn embeds its text
# (a miss in the inference cache); unique=false repeats them (cache hits).
TIME_TURNS = """async ([texts, now, warmupMs, measureMs, unique]) => {
    const times = [];
    for (const [budget, keep] of [[warmupMs, false], [measureMs, true]]) {
        const end = performance.now() + budget;
        for (let i = 0; performance.now() < end; i++) {
            const started = performance.now();
            const text = texts[i % texts.length] + (unique ? ` (${i})` : '');
            await window.pyAgent.ask(text, now);
            if (keep) times.push(performance.now() - started);
        }
    }
    return times;
}"""


def generated_notes(count: int) -> list[str]:
    rng = random.Random(11)
    return [
        rng.choice(TEMPLATES).format(
            s=rng.choice(SUBJECTS),
            p=rng.choice(PEOPLE),
            n=rng.randint(1, 9999),
            d=rng.randint(1, 28),
        )
        for _ in range(count)
    ]


def seed_records(texts: list[str]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    async def run() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        encoder = await load_encoder(str(ROOT / "models"), inference_runtime(2))
        model = f"{encoder.manifest.name}/{encoder.manifest.version}"
        notes, embeddings = [], []
        for i, text in enumerate(texts):
            note_id = f"bench{i:06d}"
            notes.append(
                {"id": note_id, "text": text, "created_at": f"2026-01-01T00:00:{i % 60:02d}"}
            )
            key = embedding_key("notes", note_id)
            # Schema 2 kept a vector as the base64 text of its little-endian float32s.
            vector = np.asarray(await encoder.embed(text), dtype="<f4").tobytes()
            text64 = base64.b64encode(vector).decode("ascii")
            embeddings.append({"key": key, "model": model, "vector": text64})
        return notes, embeddings

    return asyncio.run(run())


def boot(page: Page, url: str) -> float:
    started = time.perf_counter()
    page.goto(url)
    if wait_for_boot(page) != "ready":
        raise SystemExit(page.inner_text("#boot-error-text"))
    return (time.perf_counter() - started) * 1000


def stored_boots(page: Page, notes: int, runs: int) -> dict[str, Any]:
    """Reload ``runs`` times: navigation → ready, and the worker's stages, per run and
    their medians (the stages are whatever the worker reports)."""
    ready, stages = [], []
    for _ in range(runs):
        page.reload()
        if wait_for_boot(page) != "ready":
            raise SystemExit(page.inner_text("#boot-error-text"))
        ready.append(round(page.evaluate("window.pyAgentReadyAt")))
        stages.append(page.evaluate("window.pyAgentBoot.timings"))
    shared = [name for name in stages[0] if all(name in run for run in stages)]
    return {
        "notes": notes,
        "runs": runs,
        "ready_ms": ready,
        "median_ms": round(statistics.median(ready)),
        "stages_ms": stages,
        "median_stage_ms": {
            name: statistics.median(run[name] for run in stages) for name in shared
        },
        "measured": report.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stored-boot-only", action="store_true")
    args = parser.parse_args()
    measure_ms = args.seconds * 1000

    started = time.perf_counter()
    notes, embeddings = seed_records(generated_notes(args.notes))
    seed_s = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as data:
        server = ServerProcess(Path(data))
        server.start()
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            try:
                if not args.stored_boot_only:
                    page = browser.new_context(bypass_csp=True).new_page()
                    boot(page, server.url + "/")
                    turns = page.evaluate(TIME_TURNS, [TURNS, NOW, 2000, measure_ms, True])
                    cached = page.evaluate(TIME_TURNS, [TURNS, NOW, 1000, measure_ms, False])

                page = browser.new_context(bypass_csp=True).new_page()
                page.add_init_script(MARK_READY)
                page.goto(server.url + "/healthz")  # same origin, before the app opens the db
                page.evaluate(SEED_DB, [notes, embeddings, SEED_SCHEMA])
                boot_ms = boot(page, server.url + "/")  # migrates the notes
                stored = len(page.evaluate("window.pyAgent.snapshot()")["notes"])
                with_notes = stored_boots(page, stored, args.runs)
                if not args.stored_boot_only:
                    search_turns = page.evaluate(TIME_TURNS, [QUERIES, NOW, 2000, measure_ms, True])
                    search_only = page.evaluate(
                        "([q, s]) => window.pyAgent.noteSearchLatency(q, s)",
                        [QUERIES, args.seconds],
                    )
                    sample = page.evaluate(
                        "(t) => window.pyAgent.ask(t, '" + NOW + "')", QUERIES[0]
                    )
            finally:
                browser.close()
                server.stop()

    if args.stored_boot_only:
        path = RESULTS / "agent.json"
        kept = json.loads(path.read_text())
        path.write_text(json.dumps({**kept, "boot_with_notes_stored": with_notes}, indent=2) + "\n")
        print(json.dumps(with_notes, indent=2))
        return

    results = {
        "local_turn_ms": report.summary(turns),
        "local_turn_cached_ms": report.summary(cached),
        "notes_stored": stored,
        "boot_with_notes_ms": round(boot_ms),
        "boot_with_notes_stored": with_notes,
        "note_search_turn_ms": report.summary(search_turns),
        "note_search_step_ms": report.summary(search_only),
        "sample_answer": sample["text"],
        "native_embedding_of_notes_s": round(seed_s, 1),
    }
    path = report.write("agent", results)
    print("| measure | p50 ms | p95 ms | n |\n|---|---:|---:|---:|")
    for label, key in [
        ("local turn (text → reply, IndexedDB commit)", "local_turn_ms"),
        ("local turn, utterance in the inference cache", "local_turn_cached_ms"),
        (f"note.search turn over {stored:,} notes", "note_search_turn_ms"),
        (f"search step alone over {stored:,} notes", "note_search_step_ms"),
    ]:
        s = results[key]
        print(f"| {label} | {s['p50']:.2f} | {s['p95']:.2f} | {s['n']} |")
    print(f"\nfirst boot with {stored:,} notes (migrating them): {boot_ms:.0f} ms")
    print(f"boot with them stored: {with_notes['median_ms']} ms (median of {args.runs})")
    print(json.dumps(sample["text"]))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
