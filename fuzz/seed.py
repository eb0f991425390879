#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora from events/ and the KPL fixtures.

    python3 fuzz/seed.py

process:  the shipped Kinesis events, whole
unpack:   every record's data, and the KPL fixtures
kpl_body: the fixtures' protobuf bodies (magic and MD5 trailer removed)
contract: every plain record's data
"""
import base64
import json
import pathlib

root = pathlib.Path(__file__).resolve().parent.parent
corpus = root / "fuzz" / "seeds"
MAGIC = bytes([0xF3, 0x89, 0x9A, 0xC2])


def write(target, name, data):
    folder = corpus / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


for path in sorted((root / "events").glob("*.json")):
    text = path.read_bytes()
    if len(text) > 200_000:
        continue  # libFuzzer's default -max_len is far smaller
    write("process", path.stem, text)
    for i, record in enumerate(json.loads(text).get("Records", [])):
        data = base64.b64decode(record["kinesis"]["data"])
        write("unpack", f"{path.stem}-{i}", data)
        if not data.startswith(MAGIC):
            write("contract", f"{path.stem}-{i}", data)

for path in sorted((root / "tests" / "fixtures" / "kpl").glob("*.bin")):
    data = path.read_bytes()
    write("unpack", path.stem, data)
    write("kpl_body", path.stem, data[4:-16])
print(f"seeds written under {corpus.relative_to(root)}/")
