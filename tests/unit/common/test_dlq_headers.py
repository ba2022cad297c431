"""The dead-letter headers of hostile records and errors."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord

from perpsignal_common.errors import PoisonMessage
from perpsignal_common.kafka.dlq import MAX_ERROR_BYTES, dlq_headers


def _record(headers: list[tuple[str, bytes | None]]) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="perpsignal.market.v1",
        partition=0,
        offset=7,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=b"{}",
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=2,
        headers=headers,  # type: ignore[arg-type]
    )


def test_a_long_reason_in_another_script_is_cut_on_a_character_boundary() -> None:
    # a symbol may be in any script (README value rules): a cut in the middle of a character
    # left a `dlq.error` that is not UTF-8, which tools reading the DLQ fail to decode
    error = PoisonMessage("unknown symbol 币安人生USDT; " * 100)
    headers = dict(dlq_headers(_record([]), group="g", error=error, attempts=1))
    reason = headers["dlq.error"]
    assert len(reason) <= MAX_ERROR_BYTES
    assert reason.decode("utf-8").startswith("PoisonMessage: unknown symbol 币安人生USDT;")


def test_forged_dlq_headers_are_replaced_and_duplicates_kept() -> None:
    forged = [("dlq.error", b"forged"), ("dlq.offset", b"999"), ("h", b"1"), ("h", None)]
    headers = dlq_headers(_record(forged), group="g", error=PoisonMessage("bad"), attempts=0)
    assert [v for k, v in headers if k == "dlq.error"] == [b"PoisonMessage: bad"]
    assert [v for k, v in headers if k == "dlq.offset"] == [b"7"]
    assert [v for k, v in headers if k == "h"] == [b"1", None]
