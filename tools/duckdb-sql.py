#!/usr/bin/env python3
"""Run SQL statements with DuckDB; print the rows of the named ones.

Reads a JSON list of {"sql": ..., "name": ...} on stdin (bridge_local::lake
writes it), runs each statement in one in-memory DuckDB, and prints one JSON
line {"name", "columns", "rows"} for each statement that has a name. Used by
`make demo` to read the delivered objects back as the template's Glue tables
describe them. Runs in .venv/duckdb (tools/requirements-duckdb.txt).
"""

import json
import sys

import duckdb


def main():
    statements = json.load(sys.stdin)
    con = duckdb.connect()
    for statement in statements:
        cursor = con.execute(statement["sql"])
        name = statement.get("name")
        if name:
            columns = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
            print(json.dumps({"name": name, "columns": columns, "rows": rows}, default=str))


if __name__ == "__main__":
    main()
