"""`py-agent` as a real process: a conversation scripted through `chat --json` on a pipe, then
`export`; and bulk texts through stdin (onnxruntime 1.30's Python module crashes on import
when the command line carries 32 KB or more, so no test here passes large arguments)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support import ROOT

MODELS = ["--models-dir", str(ROOT / "models")]
NOW = "2026-11-18T10:00:00+00:00"
# Generous: a cold start loads the model; nothing here waits on time otherwise.
TIMEOUT_S = 300


def py_agent(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tools.cli", *args]
    assert sum(len(arg) for arg in command) < 4096  # bulk input goes through stdin
    return subprocess.run(
        command,
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=ROOT,
        timeout=TIMEOUT_S,
        check=False,
    )


def test_a_scripted_conversation_then_export(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    script = [
        "remind me to buy milk tomorrow",
        "",
        "what are my tasks?",
        "y" * 2001,
        "I bought the milk",
    ]
    chat = py_agent(
        "chat", "--json", "--now", NOW, "--data", str(db), *MODELS, stdin="\n".join(script)
    )
    assert chat.returncode == 0, chat.stderr
    replies = [json.loads(line) for line in chat.stdout.splitlines()]
    assert len(replies) == 4, chat.stdout  # no answer to the blank line
    added, listed, refused, completed = replies
    assert refused == {"error": "the request is 2001 characters; the limit is 2000"}
    for reply in (added, listed, completed):
        assert set(reply) == {"reply", "intent", "confidence", "source"}, reply
        assert reply["source"] == "device"  # the CLI's chat has no server
        assert 0 < reply["confidence"] <= 1 and reply["reply"]
    assert [r["intent"] for r in (added, listed, completed)] == [
        "task.add",
        "task.list",
        "task.complete",
    ]
    assert "buy milk" in added["reply"] and "buy milk" in listed["reply"]

    export = py_agent("export", "--data", str(db))
    assert export.returncode == 0, export.stderr
    (task,) = json.loads(export.stdout)["tasks"]
    assert task["title"] == "buy milk" and task["due"] == "2026-11-19"
    assert task["done"] is True and task["completed_at"] == NOW
    assert json.loads(export.stdout)["notes"] == []


def test_export_of_a_missing_database_exits_2(tmp_path: Path) -> None:
    result = py_agent("export", "--data", str(tmp_path / "missing.db"))
    assert result.returncode == 2 and result.stdout == ""
    assert "missing.db does not exist" in result.stderr
    assert not (tmp_path / "missing.db").exists()


def bulk_lines() -> list[str]:
    """About 40 KB of texts, one per line."""
    lines = [
        f"remind me to call Mom about the plan number {i} for the weekend trip to the coast"
        for i in range(500)
    ]
    assert len("\n".join(lines).encode()) >= 40_000
    return lines


def test_tokenize_reads_40_kb_from_stdin() -> None:
    lines = bulk_lines()
    result = py_agent("tokenize", *MODELS, stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == len(lines)
    single = py_agent("tokenize", *MODELS, lines[7])
    assert rows[7] == json.loads(single.stdout)
    assert rows[0][0] == 101 and rows[0][-1] == 102


def test_embed_reads_40_kb_from_stdin() -> None:
    lines = bulk_lines()
    result = py_agent("embed", *MODELS, stdin="\n".join(lines))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == len(lines) and {len(row) for row in rows} == {384}
    single = py_agent("embed", *MODELS, lines[3])
    assert rows[3] == json.loads(single.stdout)  # one at a time either way: same numbers
