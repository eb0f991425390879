#!/usr/bin/env python3
"""Writes the generated Kinesis test events in events/ (the hand-made
valid.json, mixed-invalid.json and kpl-aggregated.json stay as they are).

    python3 tools/make-events.py

Each file is a Lambda KinesisEvent that `cargo lambda invoke --data-file`
accepts. What each should deliver and reject is in events/expected.json,
which tests/events.rs and `make invoke` both read.
"""
import base64
import hashlib
import json
import pathlib

root = pathlib.Path(__file__).resolve().parent.parent
events = root / "events"
MAGIC = bytes([0xF3, 0x89, 0x9A, 0xC2])
ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/analytics-events"


def record(seq, key, data):
    sequence = "4965800000000000000000000000000000000000000000000000%04d" % seq
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": key,
            "sequenceNumber": sequence,
            "data": base64.b64encode(data).decode(),
            "approximateArrivalTimestamp": 1764072000.123,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": "shardId-000000000000:" + sequence,
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/kinesis-firehose-bridge",
        "awsRegion": "us-east-1",
        "eventSourceARN": ARN,
    }


def event(event_id, event_type="page_view", **extra):
    body = {"event_id": event_id, "event_type": event_type, "timestamp": "2026-11-25T12:00:00.000Z"}
    body.update(extra)
    return json.dumps(body, separators=(",", ":")).encode()


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, wire, payload):
    key = varint((number << 3) | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def aggregate(keys, users):
    """A KPL aggregate: `keys` is the partition key table, `users` a list of
    (key index, data)."""
    body = b"".join(field(1, 2, k.encode()) for k in keys)
    for index, data in users:
        body += field(3, 2, field(1, 0, varint(index)) + field(3, 2, data))
    return MAGIC + body + hashlib.md5(body).digest()


def write(name, records):
    path = events / name
    path.write_text(json.dumps({"Records": records}, indent=2) + "\n")
    print(f"wrote {path.relative_to(root)} ({path.stat().st_size} bytes)")


# The two contract reasons mixed-invalid.json does not hold, and a valid
# event on each side.
write("contract-violations.json", [
    record(400, "user-400", event("evt-0400")),
    record(401, "user-401", b'{"timestamp":"2026-11-25T12:00:00Z","user_id":"u-1"}'),
    record(402, "user-402", b'{"event_type":"a","event_type":"b","timestamp":"2026-11-25T12:00:00Z"}'),
    record(403, "user-403", event("evt-0403", "signup")),
])

# KPL aggregates the bridge refuses whole: one with no user records, and one
# whose 250 user records share a 20,000-byte partition key (5 MB once each
# carries it, past the 4 MiB an aggregate may expand to); and a good one.
write("kpl-hostile.json", [
    record(500, "pk-empty", aggregate([], [])),
    record(501, "pk-long", aggregate(["k" * 20_000], [(0, b"")] * 250)),
    record(502, "pk-good", aggregate(["a", "b"], [(0, event("evt-0502-0")), (1, event("evt-0502-1"))])),
])

# An event past the 1,000 KiB a Firehose record holds (Kinesis takes records
# of up to 1 MiB), and a valid one beside it.
write("too-large.json", [
    record(600, "user-600", event("evt-0600", pad="x" * 1_030_000)),
    record(601, "user-601", event("evt-0601")),
])

# Events for events/schema.json: two that pass it, three that do not.
write("schema-events.json", [
    record(700, "user-700", b'{"event_type":"signup","timestamp":"2026-11-25T12:00:00Z","user_id":7}'),
    record(701, "user-701", b'{"event_type":"login","timestamp":"2026-11-25T12:00:01.5+01:00","user_id":8,"email":"a@example.com"}'),
    record(702, "user-702", b'{"event_type":"signup","timestamp":"not a time","user_id":7}'),
    record(703, "user-703", b'{"event_type":"signup","timestamp":"2026-11-25T12:00:00Z","user_id":"7"}'),
    record(704, "user-704", b'{"event_type":"signup","timestamp":"2026-11-25T12:00:00Z","user_id":7,"email":"not an address"}'),
])
