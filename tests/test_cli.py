"""`py-agent chat --json`, `export`, `import`, and `tokenize`/`embed` reading stdin, run
in-process through `main([...])` (test_cli_subprocess.py runs them as a real process)."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from support import ROOT

from py_agent.agent import Reply
from tools.cli import _reply_json, main

MODELS = ["--models-dir", str(ROOT / "models")]
NOW = "2026-11-18T10:00:00+00:00"


class Stdin(io.StringIO):
    """Text on stdin from a pipe (``isatty`` false), with ``buffer`` for binary reads."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.buffer = io.BytesIO(text.encode())

    def isatty(self) -> bool:
        return False


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, stdin: str
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", Stdin(stdin))
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def export(db: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["export", "--data", str(db)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return dict(json.loads(out))


def table(db: Path, name: str) -> list[tuple[str, str]]:
    import sqlite3

    with sqlite3.connect(db) as connection:
        return connection.execute(f'SELECT key, value FROM "{name}" ORDER BY key').fetchall()


# -- chat --json -----------------------------------------------------------------------


def test_reply_sources_are_named_device_server_or_guess() -> None:
    def reply(source: str) -> Reply:
        return Reply("ok", "help", 0.91234, 1.0, False, source=source)

    assert _reply_json(reply("local")) == {
        "reply": "ok",
        "intent": "help",
        "confidence": 0.9123,
        "source": "device",
    }
    assert _reply_json(reply("cloud"))["source"] == "server"
    assert _reply_json(reply("tentative"))["source"] == "guess"


def test_chat_json_answers_each_line_skips_blank_ones_and_reports_refusals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "chat.db"
    lines = ["remind me to buy milk tomorrow", "", "   ", "x" * 2001, "remind me to call Mom"]
    code, out, err = run(
        ["chat", "--json", "--now", NOW, "--data", str(db), *MODELS],
        capsys,
        monkeypatch,
        "\n".join(lines) + "\n",
    )
    assert (code, err) == (0, "")
    replies = [json.loads(line) for line in out.splitlines()]
    assert len(replies) == 3  # the blank lines got no answer
    first, refused, last = replies
    assert set(first) == {"reply", "intent", "confidence", "source"}
    assert first["intent"] == "task.add" and first["source"] == "device"
    assert 0 < first["confidence"] <= 1 and "buy milk" in first["reply"]
    assert refused == {"error": "the request is 2001 characters; the limit is 2000"}
    assert last["intent"] == "task.add"  # the session went on after the refusal
    # --now is the clock of the whole conversation: "tomorrow" is 2026-11-19.
    tasks = {t["title"]: t for t in export(db, capsys)["tasks"]}
    assert tasks["buy milk"]["due"] == "2026-11-19"
    assert set(tasks) == {"buy milk", "call Mom"}


def test_chat_now_without_an_offset_is_local_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "chat.db"
    code, _, _ = run(
        ["chat", "--json", "--now", "2026-11-18T23:30", "--data", str(db), *MODELS],
        capsys,
        monkeypatch,
        "remind me to buy milk tomorrow\n",
    )
    assert code == 0
    first = json.loads(table(db, "messages")[0][1])  # ids sort in the order they were made
    assert first["role"] == "user"
    assert first["at"] == datetime(2026, 11, 18, 23, 30).astimezone().isoformat()
    assert export(db, capsys)["tasks"][0]["due"] == "2026-11-19"


def test_chat_refuses_a_now_that_is_not_iso(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["chat", "--json", "--now", "tomorrow"])
    assert exit.value.code == 2
    assert "not an ISO time: 'tomorrow'" in capsys.readouterr().err


# -- export ----------------------------------------------------------------------------


def test_export_of_a_missing_database_is_an_error_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere" / "chat.db"
    assert main(["export", "--data", str(missing)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"py-agent export: error: {missing} does not exist")
    assert not missing.parent.exists()
    assert main(["export", "--data", str(tmp_path)]) == 2
    assert f"{tmp_path} is not a file" in capsys.readouterr().err


def test_export_of_an_empty_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "empty.db"
    db.touch()
    assert export(db, capsys) == {"tasks": [], "notes": []}


# -- import ----------------------------------------------------------------------------

DOCUMENT = {
    "tasks": [
        {
            "id": "t1",
            "title": "call Mom",
            "due": "2026-11-19T17:00",
            "done": False,
            "list": None,
            "repeat": None,
            "completed_at": None,
        },
        {
            "id": "t2",
            "title": "take out the trash",
            "due": "2026-11-23",
            "done": False,
            "list": None,
            "repeat": "FREQ=WEEKLY;BYDAY=MO",
            "completed_at": None,
        },
        {
            "id": "t3",
            "title": "avocados",
            "due": None,
            "done": True,
            "list": "groceries",
            "repeat": None,
            "completed_at": "2026-11-17T18:00:00+01:00",
        },
    ],
    "notes": [{"id": "n1", "text": "the wifi password is hunter2"}],
}


def test_import_then_export_gives_the_file_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, file = tmp_path / "new" / "chat.db", tmp_path / "export.json"
    file.write_text(json.dumps(DOCUMENT), encoding="utf-8")
    assert main(["import", "--data", str(db), str(file), *MODELS]) == 0
    assert capsys.readouterr() == ("imported 3 tasks and 1 note\n", "")
    assert export(db, capsys) == DOCUMENT
    # Embedded with the real model, tagged with its name, as chat does.
    embeddings = [json.loads(value) for _, value in table(db, "embeddings")]
    assert len(embeddings) == 4 and all(e["model"].startswith("all-minilm") for e in embeddings)
    # Every field is an op waiting to sync.
    assert len(table(db, "outbox")) == len(table(db, "ops")) > 0

    changed = json.loads(json.dumps(DOCUMENT))
    changed["tasks"][0]["title"] = "call Mom back"
    changed["notes"].append({"id": "n2", "text": "the gate code is 4321"})
    file.write_text(json.dumps(changed), encoding="utf-8")
    assert main(["import", "--data", str(db), str(file), *MODELS]) == 0
    assert capsys.readouterr().out == "imported 3 tasks (3 updated) and 2 notes (1 updated)\n"
    assert export(db, capsys) == changed


def test_import_reads_stdin_for_a_dash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "chat.db"
    code, out, err = run(
        ["import", "--data", str(db), "-", *MODELS], capsys, monkeypatch, json.dumps(DOCUMENT)
    )
    assert (code, out, err) == (0, "imported 3 tasks and 1 note\n", "")
    assert export(db, capsys) == DOCUMENT


def test_a_bad_file_is_refused_with_its_paths_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, file = tmp_path / "chat.db", tmp_path / "export.json"
    file.write_text(json.dumps(DOCUMENT), encoding="utf-8")
    assert main(["import", "--data", str(db), str(file), *MODELS]) == 0
    capsys.readouterr()
    before = {name: table(db, name) for name in ("ops", "outbox", "embeddings", "meta")}

    bad = json.loads(json.dumps(DOCUMENT))
    bad["tasks"][0]["title"] = "call Mom again"  # a valid change in the same file
    bad["tasks"].append({**bad["tasks"][1], "id": "t4", "due": "2026-13-01"})
    bad["notes"][0]["colour"] = "red"
    file.write_text(json.dumps(bad), encoding="utf-8")
    assert main(["import", "--data", str(db), str(file), *MODELS]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "py-agent import: error: Task 4's “due” is \"2026-13-01\", which isn't a date: write it "
        "like 2026-11-19, or 2026-11-19T17:00 with a time (or null for none).",
        "Note 1 has “colour”, which a note doesn't have (it has id, text).",
    ]
    assert {name: table(db, name) for name in before} == before
    assert export(db, capsys) == DOCUMENT


def test_import_of_a_missing_or_oversized_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from py_agent.export import MAX_BYTES

    db = tmp_path / "chat.db"
    assert main(["import", "--data", str(db), str(tmp_path / "none.json"), *MODELS]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"py-agent import: error: cannot read {tmp_path / 'none.json'}: ")
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (MAX_BYTES + 1))
    assert main(["import", "--data", str(db), str(big), *MODELS]) == 2
    assert f"{big} is larger than the limit of 20 MB" in capsys.readouterr().err
    assert not db.exists()  # checked before the data was opened


# -- tokenize / embed from stdin -------------------------------------------------------


def test_tokenize_reads_one_text_per_stdin_line_like_arguments(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = ["Remind me to call Mom", "", "tab\tand\u2028line separator", "café ☕"]
    assert main(["tokenize", *MODELS, *texts]) == 0
    from_args = capsys.readouterr().out
    code, from_stdin, _ = run(["tokenize", *MODELS], capsys, monkeypatch, "\r\n".join(texts) + "\n")
    assert code == 0 and from_stdin == from_args
    assert len(from_stdin.splitlines()) == 4  # the empty line is a text; \u2028 splits nothing
    assert json.loads(from_stdin.splitlines()[0]) == [101, 10825, 2033, 2000, 2655, 3566, 102]


def test_embed_reads_stdin_too(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["embed", *MODELS, "call Mom", "buy milk"]) == 0
    from_args = capsys.readouterr().out
    code, from_stdin, _ = run(["embed", *MODELS], capsys, monkeypatch, "call Mom\nbuy milk")
    assert code == 0 and from_stdin == from_args
    assert [len(json.loads(line)) for line in from_stdin.splitlines()] == [384, 384]


def test_no_texts_and_a_terminal_on_stdin_is_an_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", Terminal())
    assert main(["tokenize", *MODELS]) == 2
    assert "give TEXT arguments, or pipe texts into stdin" in capsys.readouterr().err
