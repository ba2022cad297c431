"""Export the public contract: JSON Schema of every event and an AsyncAPI 3.0 document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from perpsignal_common.events.factors import FACTOR_INPUTS
from perpsignal_common.events.registry import EVENT_CLASSES, events_for_topic
from perpsignal_common.events.topics import TOPIC_SPECS, dlq_topic


def event_schemas() -> dict[str, dict[str, Any]]:
    """Return {event type: JSON Schema} for every event class."""
    out: dict[str, dict[str, Any]] = {}
    for cls in EVENT_CLASSES:
        schema = cls.model_json_schema(mode="serialization")
        schema["x-topic"] = cls.topic
        out[cls.model_fields["type"].default] = schema
    return out


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
            "headers": {
                "type": "object",
                "properties": {
                    "event_type": {"type": "string", "const": etype},
                    "event_id": {"type": "string"},
                    "correlation_id": {"type": "string"},
                },
            },
            "payload": {"$ref": f"./events/{etype}.json"},
        }
    for spec in TOPIC_SPECS:
        classes = events_for_topic(spec.name)
        cid = spec.name.replace(".", "_")
        channels[cid] = {
            "address": spec.name,
            "description": f"{spec.description}. Key: {spec.key}. Partitions: {spec.partitions}."
            f" Dead letters: {dlq_topic(spec.name)}.",
            "messages": {
                c.__name__: {"$ref": f"#/components/messages/{c.__name__}"} for c in classes
            },
            "bindings": {
                "kafka": {
                    "partitions": spec.partitions,
                    "topicConfiguration": {"retention.ms": spec.retention_ms},
                }
            },
        }
        if classes:
            operations[f"receive_{cid}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{cid}"},
                "messages": [{"$ref": f"#/channels/{cid}/messages/{c.__name__}"} for c in classes],
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
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


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
