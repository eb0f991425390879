#!/usr/bin/env python3
"""Serve the release binary through the Lambda Runtime API, on 127.0.0.1.

One local HTTP server plays both the Lambda Runtime API (the binary polls
/runtime/invocation/next) and Firehose (the binary's AWS_ENDPOINT_URL points
here; every PutRecordBatch entry is accepted at once). It measures:

- cold start: from spawning the process to its first /next poll (config,
  tracing, SDK client; no network), the median of --cold-starts runs;
- peak resident memory (VmHWM) after serving --invocations invocations of
  each batch, a fresh process per batch, configured as deployed (two
  delivery streams and a rejects stream): 500 x 1 KB events, a maximum-size
  invocation (~6 MB of payload: 500 records of ~8.9 KB, base64 in the JSON
  document), the same with COMPRESSION=gzip, the hostile KPL aggregates
  (huge keys, many empty records), and the worst batch within 6 MB (aggregates of 10,000 empty user
  records under a 256-character key of control characters), also with the
  rejects stream refusing every call, so that every reject is kept in the
  log.

Usage: tools/runtime-harness.py target/release/kinesis-firehose-bridge
Prints a Markdown table; the last line is the figures as one JSON object.
"""

import argparse
import base64
import hashlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EVENT_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/analytics-events"


def event(i, size):
    head = (
        '{"event_id":"0193a5c2-7d4e-7a8b-9c1d-%012d","event_type":"page_view",'
        '"timestamp":"2026-11-25T12:00:00.123Z","user_id":"user-%d","properties":{"pad":"' % (i, i % 977)
    )
    return (head + "x" * max(0, size - len(head) - 3) + '"}}').encode()


def kinesis_event(n, size):
    return kinesis_event_of([event(i, size) for i in range(n)])


def kinesis_event_of(payloads):
    records = []
    for i, data in enumerate(payloads):
        seq = "49658000000000000000000000000000000000000000000000%06d" % i
        records.append({
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": "user-%d" % i,
                "sequenceNumber": seq,
                "data": base64.b64encode(data).decode(),
                "approximateArrivalTimestamp": 1764072000.123,
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": "shardId-000000000000:" + seq,
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/bridge",
            "awsRegion": "us-east-1",
            "eventSourceARN": EVENT_ARN,
        })
    return json.dumps({"Records": records}).encode()


MAGIC = bytes([0xF3, 0x89, 0x9A, 0xC2])


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, wire, payload):
    key = varint((number << 3) | wire)
    return key + varint(len(payload)) + payload if wire == 2 else key + payload


def aggregate(keys, users, hash_keys=()):
    """A KPL aggregate: `users` are (key index, hash key index or None, data)."""
    body = b"".join(field(1, 2, k.encode()) for k in keys)
    body += b"".join(field(2, 2, k.encode()) for k in hash_keys)
    for key, hash_key, data in users:
        message = field(1, 0, varint(key))
        if hash_key is not None:
            message += field(2, 0, varint(hash_key))
        body += field(3, 2, message + field(3, 2, data))
    return MAGIC + body + hashlib.md5(body).digest()


def empty_users(n, key):
    """`n` user records with no field set (two bytes each) under `key`."""
    body = field(1, 2, key.encode()) + bytes([0x1A, 0x00]) * n
    return MAGIC + body + hashlib.md5(body).digest()


def hostile_batches():
    """The hostile aggregates, and the worst batch within 6 MB."""
    key20 = aggregate(["k" * 20_000], [(0, None, b"")] * 5_000)
    key60 = aggregate(["k" * 60_000], [(0, None, b"")] * 5_000)
    hash30 = aggregate(["k"], [(0, 0, b"")] * 10_000, hash_keys=["9" * 30_000])
    one = empty_users(10_000, "\x01" * 256)
    worst = []
    while len(kinesis_event_of(worst + [one])) <= 6 * 1024 * 1024:
        worst.append(one)
    return [
        ("a 20,000-byte key shared by 5,000 empty user records", kinesis_event_of([key20])),
        ("a 60,000-byte key x 5,000", kinesis_event_of([key60])),
        ("a 30,000-byte explicit hash key x 10,000", kinesis_event_of([hash30])),
        ("200,000 empty user records, key k", kinesis_event_of([empty_users(200_000, "k")])),
        ("the first two and a third aggregate in one invocation", kinesis_event_of([key20, key60, hash30])),
        ("the worst batch within 6 MB: %d aggregates of 10,000 empty user records" % len(worst), kinesis_event_of(worst)),
    ]


class State:
    def __init__(self):
        self.lock = threading.Condition()
        self.queue = []          # invocation bodies still to serve
        self.first_poll = None   # monotonic time of the first /next
        self.responses = []      # (request id, status)
        self.put_calls = 0
        self.failing_stream = None  # a delivery stream whose every call fails


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def state(self):
        return self.server.state

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if not self.path.endswith("/runtime/invocation/next"):
            return self.reply(404)
        with self.state.lock:
            if self.state.first_poll is None:
                self.state.first_poll = time.monotonic()
                self.state.lock.notify_all()
            while not self.state.queue:
                self.state.lock.wait()
            request_id, body = self.state.queue.pop(0)
        deadline = int(time.time() * 1000) + 60_000
        self.reply(200, body, {
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline),
            "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:bridge",
            "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
            "Content-Type": "application/json",
        })

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if "/runtime/invocation/" in self.path:
            request_id = self.path.split("/")[-2]
            with self.state.lock:
                self.state.responses.append((request_id, self.path.rsplit("/", 1)[-1]))
                self.state.lock.notify_all()
            return self.reply(202, b"{}")
        if self.headers.get("X-Amz-Target", "").endswith("PutRecordBatch"):
            request = json.loads(body)
            records = request["Records"]
            with self.state.lock:
                self.state.put_calls += 1
                failing = request["DeliveryStreamName"] == self.state.failing_stream
            if failing:
                error = {"__type": "ServiceUnavailableException", "message": "Slow down."}
                return self.reply(400, json.dumps(error).encode(), {"Content-Type": "application/x-amz-json-1.1"})
            answer = {"FailedPutCount": 0, "Encrypted": False,
                      "RequestResponses": [{"RecordId": "r%d" % i} for i in range(len(records))]}
            return self.reply(200, json.dumps(answer).encode(), {"Content-Type": "application/x-amz-json-1.1"})
        return self.reply(404)


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def spawn(binary, port, extra_env=None):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:%d" % port,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:%d" % port,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_LAMBDA_FUNCTION_NAME": "bridge",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bridge",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_LAMBDA_LOG_LEVEL": "INFO",
        "DELIVERY_STREAMS": "events-0,events-1",
        "REJECTS_DELIVERY_STREAM": "rejects",
    }
    env.update(extra_env or {})
    started = time.monotonic()
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, started


def wait_for(state, predicate, timeout=60):
    end = time.monotonic() + timeout
    with state.lock:
        while not predicate():
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("the binary did not answer in time")
            state.lock.wait(left)


class Server:
    """A fresh server (and state) per run, so that a killed process's
    pending poll can never take the next run's invocation."""

    def __enter__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = State()
        self.state = self.httpd.state
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def cold_start(binary):
    with Server() as server:
        proc, started = spawn(binary, server.port)
        try:
            wait_for(server.state, lambda: server.state.first_poll is not None)
            return (server.state.first_poll - started) * 1000.0
        finally:
            proc.kill()
            proc.wait()


def peak_memory(binary, body, invocations, extra_env=None, failing_stream=None):
    with Server() as server:
        state = server.state
        state.failing_stream = failing_stream
        proc, _ = spawn(binary, server.port, extra_env)
        try:
            with state.lock:
                for i in range(invocations):
                    state.queue.append(("req-%d" % i, body))
                state.lock.notify_all()
            wait_for(state, lambda: len(state.responses) == invocations)
            bad = [r for r in state.responses if r[1] != "response"]
            if bad:
                raise RuntimeError("invocations failed: %r" % bad[:3])
            if state.put_calls == 0:
                raise RuntimeError("the binary never called PutRecordBatch")
            time.sleep(0.05)
            return vm_hwm_kib(proc.pid) / 1024.0
        finally:
            proc.kill()
            proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("binary")
    parser.add_argument("--cold-starts", type=int, default=11)
    parser.add_argument("--invocations", type=int, default=20)
    args = parser.parse_args()

    colds = [cold_start(args.binary) for _ in range(args.cold_starts)]
    small = kinesis_event(500, 1024)
    large = kinesis_event(500, 8900)
    mem_small = peak_memory(args.binary, small, args.invocations)
    mem_large = peak_memory(args.binary, large, args.invocations)
    mem_gzip = peak_memory(args.binary, large, args.invocations, {"COMPRESSION": "gzip"})
    hostile = [(name, len(body), peak_memory(args.binary, body, args.invocations)) for name, body in hostile_batches()]
    worst_name, worst_body = hostile_batches()[-1]
    hostile.append((worst_name + ", the rejects stream refusing every call", len(worst_body),
                    peak_memory(args.binary, worst_body, args.invocations, failing_stream="rejects")))
    size_mb = os.path.getsize(args.binary) / 1e6

    print("| measure | figure | target |")
    print("|---|---:|---:|")
    print("| cold start to first /next poll (median of %d) | %.1f ms | ≤ 30 ms |" % (len(colds), statistics.median(colds)))
    print("| peak RSS, 500 x 1 KB (%.2f MB payload), %d invocations | %.1f MiB | ≤ 32 MiB |" % (len(small) / 1e6, args.invocations, mem_small))
    print("| peak RSS, max-size (%.2f MB payload), %d invocations | %.1f MiB | ≤ 64 MiB |" % (len(large) / 1e6, args.invocations, mem_large))
    print("| peak RSS, max-size, COMPRESSION=gzip | %.1f MiB | ≤ 64 MiB |" % mem_gzip)
    for name, length, mib in hostile:
        print("| peak RSS, %s (%.2f MB payload) | %.1f MiB | ≤ 64 MiB |" % (name, length / 1e6, mib))
    print("| binary size | %.2f MB | ≤ 8 MB |" % size_mb)
    print(json.dumps({
        "cold_start_ms_median": round(statistics.median(colds), 2),
        "cold_start_ms_min": round(min(colds), 2),
        "peak_rss_mib_500x1KB": round(mem_small, 1),
        "peak_rss_mib_max_payload": round(mem_large, 1),
        "peak_rss_mib_max_payload_gzip": round(mem_gzip, 1),
        "peak_rss_mib_hostile": {name: round(mib, 1) for name, _, mib in hostile},
        "max_payload_bytes": len(large),
        "binary_bytes": os.path.getsize(args.binary),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
