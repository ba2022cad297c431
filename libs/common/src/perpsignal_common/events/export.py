"""Export the public contract: JSON Schema of every event and an AsyncAPI 3.0 document.

The AsyncAPI document names the servers (production Strimzi over TLS + SCRAM, and the
local/compose broker), one `send` and one `receive` operation per topic, and each message's
Kafka key schema (`bindings.kafka.key`); CI validates it with the reference AsyncAPI parser.
Each consumed topic's dead-letter companion (`<topic>.dlq`) is a channel too, with the
`dlq.*` headers `kafka/dlq.py` writes: operators and their tools read them.
Each event schema is a standalone JSON Schema 2020-12 document with its own `$id`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from perpsignal_common.events.factors import FACTOR_INPUTS
from perpsignal_common.events.registry import EVENT_CLASSES, events_for_topic
from perpsignal_common.events.topics import TOPIC_SPECS, TopicSpec, all_topic_specs, dlq_topic
from perpsignal_common.kafka.dlq import MAX_ERROR_BYTES

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# Stable identifiers, not download locations: the files live in schemas/events/ of the repo
SCHEMA_ID_BASE = "urn:perpsignal:schema:events:"
KAFKA_BINDING_VERSION = "0.5.0"


def schema_id(event_type: str) -> str:
    """Return the `$id` of an event type's JSON Schema."""
    return f"{SCHEMA_ID_BASE}{event_type}"


def _string_discriminators(node: Any) -> Any:
    """Return `node` with pydantic's OpenAPI-style discriminator objects as AsyncAPI wants
    them: the property name alone (the snapshot's list of market events is such a union)."""
    if isinstance(node, dict):
        out = {k: _string_discriminators(v) for k, v in node.items()}
        found = out.get("discriminator")
        if isinstance(found, dict) and "propertyName" in found:
            out["discriminator"] = found["propertyName"]
        return out
    if isinstance(node, list):
        return [_string_discriminators(v) for v in node]
    return node


def event_schemas() -> dict[str, dict[str, Any]]:
    """Return {event type: JSON Schema} for every event class."""
    out: dict[str, dict[str, Any]] = {}
    for cls in EVENT_CLASSES:
        etype = cls.model_fields["type"].default
        schema = {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": schema_id(etype),
            **_string_discriminators(cls.model_json_schema(mode="serialization")),
        }
        schema["x-topic"] = cls.topic
        out[etype] = schema
    return out


def _headers_schema(etype: str) -> dict[str, Any]:
    """The record headers `kafka.producer.event_headers` writes (UTF-8 values): a client
    generated from the document learns every name it will meet, and which are always there."""
    return {
        "type": "object",
        "properties": {
            "event_type": {"type": "string", "const": etype},
            "event_id": {"type": "string", "description": "The value's event_id"},
            "content-type": {"type": "string", "const": "application/json"},
            "correlation_id": {
                "type": "string",
                "description": "The value's correlation_id, when it has one",
            },
        },
        "required": ["event_type", "event_id", "content-type"],
    }


_DIGITS = r"^[0-9]+$"


def _dead_letter_headers(topic: str) -> dict[str, Any]:
    """The headers of a dead letter of `topic` (`kafka/dlq.py`, UTF-8 values): the original
    record's own headers, as it carried them, then the `dlq.*` ones saying where it was and
    why it failed."""
    origin = _headers_schema("")["properties"]
    origin = {
        **origin,
        "event_type": {"type": "string", "description": "The original record's event_type"},
    }
    return {
        "type": "object",
        "properties": {
            **{
                k: {**v, "description": "Copied from the original record"}
                for k, v in origin.items()
            },
            "dlq.topic": {
                "type": "string",
                "const": topic,
                "description": "Topic of the original record",
            },
            "dlq.partition": {"type": "string", "pattern": _DIGITS},
            "dlq.offset": {
                "type": "string",
                "pattern": _DIGITS,
                "description": "Offset of the original record in dlq.topic / dlq.partition",
            },
            "dlq.timestamp": {
                "type": "string",
                "pattern": r"^-?[0-9]+$",
                "description": "The original record's Kafka timestamp in ms (-1: unreadable)",
            },
            "dlq.group": {"type": "string", "description": "Consumer group that gave up"},
            "dlq.error_type": {
                "type": "string",
                "description": "Exception class, e.g. PoisonMessage (undecodable or invalid) "
                "or the error that outlasted the retries",
            },
            "dlq.error": {
                "type": "string",
                "maxLength": MAX_ERROR_BYTES,
                "description": f"`Type: message`, at most {MAX_ERROR_BYTES} UTF-8 bytes",
            },
            "dlq.attempts": {
                "type": "string",
                "pattern": _DIGITS,
                "description": "Handling attempts made (0: never decoded)",
            },
            "dlq.failed_at": {
                "type": "string",
                "format": "date-time",
                "description": "When it was dead-lettered (UTC, ISO 8601)",
            },
            "dlq.dropped": {
                "type": "string",
                "pattern": r"^(unreadable|(value|key|headers)=[0-9]+(,(key|headers)=[0-9]+)*)$",
                "description": "Present when the original could not be copied whole: "
                "`unreadable` (the client could not unpack it; empty value), or what was left "
                "out and its size in bytes (`value=N`, `key=N`, `headers=N`: too large)",
            },
            "dlq.null_value": {
                "type": "string",
                "const": "true",
                "description": "Present when the value is empty because it was null",
            },
        },
        "required": [
            "dlq.topic",
            "dlq.partition",
            "dlq.offset",
            "dlq.timestamp",
            "dlq.group",
            "dlq.error_type",
            "dlq.error",
            "dlq.attempts",
            "dlq.failed_at",
        ],
        # a record from another producer carries headers of its own, copied as they were
        "additionalProperties": {"type": "string"},
    }


def _dead_letter_message(spec: TopicSpec) -> dict[str, Any]:
    return {
        "name": f"dead-letter:{spec.name}",
        "title": f"Dead letter of {spec.name}",
        "summary": f"A record of {spec.name} a consumer group could not handle",
        "description": "The original value byte for byte (it may be no valid event, or no "
        "JSON at all: that is often why it is here); empty when dlq.dropped or "
        "dlq.null_value says so. Replay it to its topic once the cause is fixed.",
        "contentType": "application/octet-stream",
        "headers": _dead_letter_headers(spec.name),
        "payload": {"description": "The original record's value, as it was"},
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "description": "The original record's key (absent when it had none, or "
                    "when dlq.dropped names key or unreadable)",
                },
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _key_schema(key: str) -> dict[str, Any]:
    # the producer keys each record by this field (UTF-8 bytes), so one symbol stays in order
    return {"type": "string", "description": f"UTF-8 bytes of the event's {key}"}


# Production logs each service in as its own Strimzi KafkaUser, whose ACLs allow only that
# service's topics and groups (deploy/scripts/gen_k8s.py writes them; tests/deploy compares)
KAFKA_USERS = tuple(
    f"perpsignal-{s}" for s in ("ingestor", "scorer", "judge", "outcomes", "notifier", "gateway")
)


def servers() -> dict[str, Any]:
    """Return the AsyncAPI servers: production (Strimzi, TLS + SCRAM) and the local broker."""
    users = ", ".join(f"`{u}`" for u in KAFKA_USERS)
    return {
        "production": {
            "host": "perpsignal-kafka-bootstrap:9093",
            "protocol": "kafka-secure",
            "description": "Strimzi Kafka cluster `perpsignal` (TLS listener, SCRAM-SHA-512). "
            f"Each service logs in as its own KafkaUser ({users}), allowed only its own "
            "topics and consumer groups; any other client needs a KafkaUser of its own "
            "(see deploy/README.md)",
            "security": [{"$ref": "#/components/securitySchemes/scramSha512"}],
            "tags": [{"name": "env:production"}],
        },
        "local": {
            "host": "localhost:9092",
            "protocol": "kafka",
            "description": "The embedded broker of `perpsignal up` or compose's Kafka "
            "(KAFKA_BOOTSTRAP_SERVERS), PLAINTEXT",
            "tags": [{"name": "env:local"}],
        },
    }


def asyncapi_document() -> dict[str, Any]:
    """Return an AsyncAPI 3.0 document describing every topic, its key and its messages."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for cls in EVENT_CLASSES:
        etype = cls.model_fields["type"].default
        name = cls.__name__
        messages[name] = {
            "name": etype,
            "title": name,
            "summary": (cls.__doc__ or "").strip().splitlines()[0],
            "contentType": "application/json",
            "headers": _headers_schema(etype),
            "payload": {"$ref": f"./events/{etype}.json"},
            "bindings": {
                "kafka": {
                    "key": _key_schema(_topic_key(cls.topic)),
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
    for spec in TOPIC_SPECS:
        classes = events_for_topic(spec.name)
        cid = spec.name.replace(".", "_")
        channels[cid] = {
            "address": spec.name,
            "description": f"{spec.description}. Key: {spec.key}. Partitions: {spec.partitions}."
            + (f" Dead letters: {dlq_topic(spec.name)}." if spec.dead_letters else ""),
            "messages": {
                c.__name__: {"$ref": f"#/components/messages/{c.__name__}"} for c in classes
            },
            "bindings": {
                "kafka": {
                    "topic": spec.name,
                    "partitions": spec.partitions,
                    "topicConfiguration": {
                        "cleanup.policy": ["compact"] if spec.compacted else ["delete"],
                        **({} if spec.compacted else {"retention.ms": spec.retention_ms}),
                    },
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
        if classes:
            refs = [{"$ref": f"#/channels/{cid}/messages/{c.__name__}"} for c in classes]
            operations[f"send_{cid}"] = {
                "action": "send",
                "summary": f"A PerpSignal service publishes to {spec.name}, keyed by {spec.key}",
                "channel": {"$ref": f"#/channels/{cid}"},
                "messages": refs,
            }
            operations[f"receive_{cid}"] = {
                "action": "receive",
                "summary": f"Consumers read {spec.name} in their own consumer group",
                "channel": {"$ref": f"#/channels/{cid}"},
                "messages": refs,
            }
    dead_letters = {s.name: s for s in all_topic_specs(with_dlq=True)}
    for spec in TOPIC_SPECS:
        if not spec.dead_letters:
            continue
        dlq = dead_letters[dlq_topic(spec.name)]
        cid = dlq.name.replace(".", "_")
        name = "DeadLetter_" + spec.name.replace(".", "_")
        messages[name] = _dead_letter_message(spec)
        channels[cid] = {
            "address": dlq.name,
            "description": f"Dead letters of {spec.name}: records a consumer group could "
            "not decode or handle after its retries, with the error and origin in dlq.* "
            f"headers. Key: as {spec.name}. Partitions: {dlq.partitions}.",
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {
                "kafka": {
                    "topic": dlq.name,
                    "partitions": dlq.partitions,
                    "topicConfiguration": {
                        "cleanup.policy": ["delete"],
                        "retention.ms": dlq.retention_ms,
                    },
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
        refs = [{"$ref": f"#/channels/{cid}/messages/{name}"}]
        operations[f"send_{cid}"] = {
            "action": "send",
            "summary": f"A consumer group of {spec.name} dead-letters a record it cannot "
            "handle, then moves on",
            "channel": {"$ref": f"#/channels/{cid}"},
            "messages": refs,
        }
        operations[f"receive_{cid}"] = {
            "action": "receive",
            "summary": f"Operators and their tools read the dead letters of {spec.name}",
            "channel": {"$ref": f"#/channels/{cid}"},
            "messages": refs,
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "PerpSignal event topics",
            "version": "1.0.0",
            "description": "Every Kafka topic of PerpSignal. Envelope fields: event_id "
            "(idempotency key), type, schema_version, source, symbol, "
            "observed_at, produced_at, correlation_id, causation_id.",
        },
        "defaultContentType": "application/json",
        "servers": servers(),
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "securitySchemes": {
                "scramSha512": {
                    "type": "scramSha512",
                    "description": "SCRAM-SHA-512 credentials of a Strimzi KafkaUser, one "
                    "per service (`perpsignal-<service>`; the password is in the Secret of "
                    "the same name), never one shared user",
                }
            },
        },
    }


def _topic_key(topic: str) -> str:
    return next((s.key for s in TOPIC_SPECS if s.name == topic), "symbol")


def render_all() -> dict[str, str]:
    """Return {relative path: file content} of the whole exported contract."""
    files = {
        f"events/{etype}.json": json.dumps(schema, indent=2, sort_keys=True) + "\n"
        for etype, schema in event_schemas().items()
    }
    files["asyncapi.json"] = json.dumps(asyncapi_document(), indent=2, sort_keys=True) + "\n"
    # each factor's `inputs` object inside a signal's `factors` (events/factors.py)
    for name, model in FACTOR_INPUTS.items():
        schema = model.model_json_schema(mode="serialization")
        schema["x-factor"] = name
        files[f"factors/{name}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return files


def write_all(out_dir: Path) -> list[Path]:
    """Write the contract files under `out_dir`; return the paths written."""
    written = []
    for rel, content in render_all().items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        written.append(path)
    return written
