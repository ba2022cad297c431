"""`perpsignal record --out FILE` never destroys a recording: an existing one is refused
unless `--force`, and FILE is only ever replaced whole, when the recording ends.

The consumer is a stand-in with aiokafka's interface (no broker on a unit run); the file
handling under test is the command's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from perpsignal_cli import record

TOPIC = "perpsignal.market.v1"
OLD = b'{"topic":"perpsignal.market.v1","key":"BTCUSDT","event":{"old":true}}\n'


@dataclass
class Rec:
    key: bytes
    value: bytes
    offset: int


class FakeConsumer:
    """aiokafka's consumer as `record` uses it: batches scripted per `getmany` call."""

    script: list[Any] = []  # per call: a list of values, or an exception to raise
    seen: list[bytes | None] = []  # what --out held at each fetch (what a kill would leave)
    out: Path

    def __init__(self, **_: Any) -> None:
        self._client = self
        self._offset = 0

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def force_metadata_update(self) -> None: ...

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def assign(self, parts: list[TopicPartition]) -> None: ...

    async def seek_to_end(self, *parts: TopicPartition) -> None: ...

    async def getmany(self, **_: Any) -> dict[TopicPartition, list[Rec]]:
        FakeConsumer.seen.append(self.out.read_bytes() if self.out.exists() else None)
        step = FakeConsumer.script.pop(0) if FakeConsumer.script else []
        if isinstance(step, BaseException):
            raise step
        recs = []
        for value in step:
            recs.append(Rec(b"BTCUSDT", orjson.dumps(value), self._offset))
            self._offset += 1
        return {TopicPartition(TOPIC, 0): recs} if recs else {}


@pytest.fixture
def out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    monkeypatch.setenv("PERPSIGNAL_DATA_DIR", str(tmp_path / "no-stack"))
    monkeypatch.setattr(record, "AIOKafkaConsumer", FakeConsumer)
    path = tmp_path / "tap.jsonl"
    FakeConsumer.out = path
    FakeConsumer.script = []
    FakeConsumer.seen = []
    return path


def _run(out: Path, *flags: str) -> int:
    return record.main(["--out", str(out), "--topic", TOPIC, *flags])


def test_an_existing_recording_is_refused_in_one_line_and_kept(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out.write_bytes(OLD)
    FakeConsumer.script = [[{"new": 1}]]
    rc = _run(out, "--max", "1")
    err = capsys.readouterr().err
    # the old code opened it with "wb": the previous recording was gone without a word
    assert rc == 2
    assert err == (
        f"perpsignal record: --out {out} already exists; give another name, or --force to "
        "replace it\n"
    )
    assert out.read_bytes() == OLD
    assert FakeConsumer.seen == []  # refused before connecting


def test_an_empty_file_is_taken_without_force(out: Path) -> None:
    out.touch()  # `mktemp`'s file
    FakeConsumer.script = [[{"n": 1}]]
    assert _run(out, "--max", "1") == 0
    assert [orjson.loads(line)["event"] for line in out.read_bytes().splitlines()] == [{"n": 1}]


def test_force_replaces_the_file_whole_when_the_recording_ends(out: Path) -> None:
    out.write_bytes(OLD)
    FakeConsumer.script = [[{"n": 1}, {"n": 2}], [], [{"n": 3}]]
    assert _run(out, "--force", "--max", "3") == 0
    events = [orjson.loads(line)["event"] for line in out.read_bytes().splitlines()]
    assert events == [{"n": 1}, {"n": 2}, {"n": 3}]
    # while it recorded, FILE still held the previous recording: a kill -9 at any of these
    # moments would have left it, never a truncated file
    assert FakeConsumer.seen == [OLD, OLD, OLD]
    assert sorted(p.name for p in out.parent.iterdir()) == ["tap.jsonl"]  # no partial left


def test_a_recording_that_fails_mid_write_leaves_the_previous_file(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out.write_bytes(OLD)
    FakeConsumer.script = [[{"n": 1}], OSError(28, "No space left on device")]
    rc = _run(out, "--force")
    err = capsys.readouterr().err
    assert rc == 1
    assert err == (
        f"perpsignal record: cannot write {out}: No space left on device; "
        f"{out} was left as it was\n"
    )
    assert out.read_bytes() == OLD  # the old code had emptied it and written one record
    assert sorted(p.name for p in out.parent.iterdir()) == ["tap.jsonl"]


def test_a_fresh_file_appears_only_when_the_recording_ends(out: Path) -> None:
    FakeConsumer.script = [[{"n": 1}], [{"n": 2}]]
    assert _run(out, "--max", "2") == 0
    assert FakeConsumer.seen == [None, None]  # no half-written FILE to be mistaken for one
    assert len(out.read_bytes().splitlines()) == 2


def test_a_broker_lost_mid_recording_still_publishes_what_was_received(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiokafka.errors import KafkaConnectionError

    FakeConsumer.script = [[{"n": 1}], KafkaConnectionError()]
    assert _run(out) == 1
    assert f"the 1 record(s) received so far are in {out}\n" in capsys.readouterr().err
    assert [orjson.loads(line)["event"] for line in out.read_bytes().splitlines()] == [{"n": 1}]


def test_an_unexpected_failure_mid_recording_keeps_what_was_received(out: Path) -> None:
    """Only a failed write (a line may be cut) discarded the partial file on purpose; any
    other exception discarded the records received too, a loss the broker may not repeat
    (retention)."""
    out.write_bytes(OLD)
    FakeConsumer.script = [[{"n": 1}, {"n": 2}], RuntimeError("a bug in the loop")]
    with pytest.raises(RuntimeError, match="a bug in the loop"):
        _run(out, "--force")
    events = [orjson.loads(line)["event"] for line in out.read_bytes().splitlines()]
    assert events == [{"n": 1}, {"n": 2}]
    assert sorted(p.name for p in out.parent.iterdir()) == ["tap.jsonl"]


def test_a_failure_before_any_record_leaves_the_previous_file_and_says_so(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiokafka.errors import KafkaConnectionError

    out.write_bytes(OLD)
    FakeConsumer.script = [[], KafkaConnectionError()]
    assert _run(out, "--force") == 1
    assert out.read_bytes() == OLD  # --force replaces it with a recording, not with nothing
    # it said "the records received so far are in FILE": FILE held the old recording
    err = capsys.readouterr().err
    assert err.endswith(f"; no record was received: {out} was left as it was\n"), err
    assert "received so far" not in err


def test_a_failure_before_any_record_creates_no_file_and_says_so(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiokafka.errors import KafkaConnectionError

    FakeConsumer.script = [KafkaConnectionError()]
    assert _run(out) == 1
    err = capsys.readouterr().err
    assert err.endswith(f"; no record was received: {out} was not created\n"), err
    assert not out.exists()
