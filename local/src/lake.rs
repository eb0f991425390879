//! The lake as `template.yaml` describes it, checked on this machine.
//!
//! The template's Glue tables (their columns, SerDe and partition
//! projection) are read from the template itself: it is the one place the
//! tables' columns are written. [`Lake::lay_out`] writes the objects the
//! delivery streams wrote into a folder laid out as those tables'
//! partitions (`lake/events/year=…/month=…/day=…/hour=…/`), as S3 holds
//! them in AWS, where moto keeps them under `events/YYYY/MM/DD/HH/`.
//! [`Lake::read`] then has DuckDB read that folder the way each table
//! describes it (JSON lines with the table's columns, or whole lines as one
//! string column, Hive partitions as string columns) and run the query the
//! stack's `EventsPerTypePerHourQuery` output gives. Any other engine can be
//! pointed at the same folder.
//!
//! DuckDB is Python's `duckdb`, pinned in `tools/requirements-duckdb.txt`
//! and installed into `.venv/duckdb` by `make duckdb`;
//! `tools/duckdb-sql.py` runs the statements this module writes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_norway::Value;

use crate::Result;
use crate::bucket::{Contents, Object};

/// The folder of a run that holds the lake, laid out as the tables'
/// partitions.
pub const DIR: &str = "lake";

/// Keeps what the delivery streams wrote (`events/`, `rejects/`) under the
/// run folder's [`DIR`], laid out as the template's tables describe it.
pub fn keep(contents: &Contents, run_dir: &Path) -> Result<usize> {
    let objects: Vec<&Object> = contents.delivered.iter().chain(&contents.rejected).collect();
    Lake::from_repo()?.lay_out(&objects, &run_dir.join(DIR))
}

/// The output whose query [`Lake::read`] runs.
pub const QUERY_OUTPUT: &str = "EventsPerTypePerHourQuery";

/// The database name the query's `${LakeDatabase}` takes here.
const DATABASE: &str = "lake";

/// How a table reads a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line, its fields as the columns (a JSON SerDe).
    JsonLines,
    /// The whole line as the one column (LazySimpleSerDe with U+0001 as
    /// its delimiter, which a JSON line never holds).
    WholeLines,
}

/// One Glue table of the template.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The table's name, e.g. `events`.
    pub name: String,
    /// Its columns, (name, Hive type).
    pub columns: Vec<(String, String)>,
    /// Its partition columns, in the order of the path.
    pub partitions: Vec<String>,
    /// `storage.location.template` inside the bucket, e.g.
    /// `events/year=${year}/month=${month}/day=${day}/hour=${hour}/`.
    pub path: String,
    /// For each partition column, which field of Firehose's timestamp it
    /// projects: 0 year, 1 month, 2 day, 3 hour (moto's `YYYY/MM/DD/HH`).
    pub timestamp_fields: Vec<usize>,
    pub format: Format,
}

impl Table {
    /// The prefix the table's objects are under, e.g. `events/`.
    pub fn prefix(&self) -> &str {
        self.path.find("${").map_or(self.path.as_str(), |i| {
            let head = &self.path[..i];
            &head[..head.rfind('/').map_or(0, |j| j + 1)]
        })
    }

    /// Where an object moto wrote under `prefix()YYYY/MM/DD/HH/name` lies in
    /// the lake, relative to it; `None` for a key of another shape.
    pub fn lake_path(&self, key: &str) -> Option<String> {
        let rest = key.strip_prefix(self.prefix())?;
        let fields: Vec<&str> = rest.split('/').collect();
        let [year, month, day, hour, name] = fields[..] else {
            return None;
        };
        let hour_fields = [year, month, day, hour];
        let mut path = self.path.clone();
        for (column, field) in self.partitions.iter().zip(&self.timestamp_fields) {
            path = path.replace(&format!("${{{column}}}"), hour_fields[*field]);
        }
        Some(format!("{path}{name}"))
    }
}

/// The template's lake: its tables and the ready query.
#[derive(Debug, Clone)]
pub struct Lake {
    pub tables: Vec<Table>,
    /// The `EventsPerTypePerHourQuery` output, its database `lake`.
    pub query: String,
}

/// What DuckDB read back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Read {
    /// Rows of each table, by name.
    pub rows: BTreeMap<String, u64>,
    /// The ready query's rows summed per event type, most first.
    pub events_per_type: Vec<(String, u64)>,
    /// Hours the ready query found.
    pub hours: u64,
    /// The DuckDB version that read it.
    pub duckdb: String,
}

impl Lake {
    /// The repository's `template.yaml`.
    pub fn from_repo() -> Result<Self> {
        Self::read_template(&crate::repo_root().join("template.yaml"))
    }

    pub fn read_template(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let template: Value =
            serde_norway::from_str(&text).map_err(|e| format!("{} is not YAML: {e}", path.display()))?;
        let at = |what: String| format!("{}: {what}", path.display());
        let resources = template["Resources"]
            .as_mapping()
            .ok_or_else(|| at("no Resources".into()))?;
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        let mut tables = Vec::new();
        for (id, resource) in resources {
            let id = id.as_str().unwrap_or_default();
            match resource["Type"].as_str() {
                Some("AWS::Glue::Database") => {
                    names.insert(id.to_owned(), DATABASE.to_owned());
                }
                Some("AWS::Glue::Table") => {
                    let table = table(&resource["Properties"]["TableInput"]).map_err(|e| at(format!("{id}: {e}")))?;
                    names.insert(id.to_owned(), table.name.clone());
                    tables.push(table);
                }
                _ => {}
            }
        }
        if tables.is_empty() {
            return Err(at("no AWS::Glue::Table".into()).into());
        }
        let query = sub_text(&template["Outputs"][QUERY_OUTPUT]["Value"])
            .ok_or_else(|| at(format!("no output {QUERY_OUTPUT} with a !Sub query")))?;
        let query = names
            .iter()
            .fold(query.to_owned(), |q, (id, name)| q.replace(&format!("${{{id}}}"), name));
        Ok(Lake { tables, query })
    }

    /// Writes every object under a table's prefix to `dir`, laid out as the
    /// table's partitions; gzip objects are named `.gz`, as Firehose names
    /// them, so that every reader knows them. Returns how many it wrote.
    pub fn lay_out(&self, objects: &[&Object], dir: &Path) -> Result<usize> {
        let mut written = 0;
        for object in objects {
            let Some(relative) = self.tables.iter().find_map(|t| t.lake_path(&object.key)) else {
                continue;
            };
            let gzip = object.body.starts_with(&[0x1F, 0x8B]);
            let relative = if gzip && !relative.ends_with(".gz") {
                format!("{relative}.gz")
            } else {
                relative
            };
            let path = dir.join(relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            std::fs::write(&path, &object.body).map_err(|e| format!("{}: {e}", path.display()))?;
            written += 1;
        }
        Ok(written)
    }

    /// The statements that make each table a DuckDB view over `dir` (a
    /// table with no objects there is left out), then count each one's
    /// rows and run the ready query.
    pub fn statements(&self, dir: &Path) -> Result<Vec<Statement>> {
        let mut statements = vec![
            Statement::run("SET TimeZone = 'UTC'"),
            Statement::run(&format!("CREATE SCHEMA {DATABASE}")),
        ];
        let mut present = Vec::new();
        for table in &self.tables {
            let folder = dir.join(table.prefix());
            if !folder.is_dir() {
                continue;
            }
            let mut pattern = table.path.clone();
            for p in &table.partitions {
                pattern = pattern.replace(&format!("${{{p}}}"), "*");
            }
            let glob = format!("{}*", dir.join(pattern).display()).replace('\'', "''");
            let hive_types = table
                .partitions
                .iter()
                .map(|p| format!("'{p}': 'VARCHAR'"))
                .collect::<Vec<_>>()
                .join(", ");
            let columns = table
                .columns
                .iter()
                .map(|(name, ty)| Ok(format!("'{name}': '{}'", duckdb_type(ty)?)))
                .collect::<Result<Vec<_>>>()?
                .join(", ");
            let reader = match table.format {
                Format::JsonLines => format!(
                    "read_json('{glob}', format = 'newline_delimited', columns = {{{columns}}}, \
                     hive_partitioning = true, hive_types = {{{hive_types}}})"
                ),
                Format::WholeLines => format!(
                    "read_csv('{glob}', delim = chr(1), quote = '', escape = '', header = false, \
                     columns = {{{columns}}}, hive_partitioning = true, hive_types = {{{hive_types}}})"
                ),
            };
            statements.push(Statement::run(&format!(
                "CREATE VIEW {DATABASE}.\"{}\" AS SELECT * FROM {reader}",
                table.name
            )));
            present.push(table.name.clone());
        }
        for name in &present {
            statements.push(Statement::result(
                &format!("rows {name}"),
                &format!("SELECT count(*) FROM {DATABASE}.\"{name}\""),
            ));
        }
        if present.iter().any(|n| self.query.contains(&format!("\"{n}\""))) {
            statements.push(Statement::result("query", &self.query));
        }
        statements.push(Statement::result("version", "SELECT version()"));
        Ok(statements)
    }

    /// Has DuckDB (`.venv/duckdb`) read `dir` as the tables describe it.
    pub fn read(&self, dir: &Path) -> Result<Read> {
        let statements = self.statements(dir)?;
        let python = duckdb_python();
        if !python.exists() {
            return Err(format!(
                "DuckDB is not installed: {} does not exist. Run `make duckdb` first.",
                python.display()
            )
            .into());
        }
        let script = crate::repo_root().join("tools/duckdb-sql.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", python.display()))?;
        let input = serde_json::to_vec(&statements)?;
        child
            .stdin
            .take()
            .ok_or("DuckDB's stdin")?
            .write_all(&input)
            .map_err(|e| format!("writing to DuckDB: {e}"))?;
        let output = child.wait_with_output()?;
        if !output.status.success() {
            return Err(format!(
                "DuckDB could not read the lake in {}: {}",
                dir.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            )
            .into());
        }
        parse_results(&String::from_utf8_lossy(&output.stdout))
    }
}

impl Read {
    /// What it read, for the demo's report.
    pub fn lines(&self, dir: &Path) -> Vec<String> {
        let rows: Vec<String> = self.rows.iter().map(|(t, n)| format!("{t} {n} rows")).collect();
        let per_type: Vec<String> = self.events_per_type.iter().map(|(t, n)| format!("{t} {n}")).collect();
        vec![
            format!(
                "lake: DuckDB {} read {} as the template's Glue tables describe it: {}",
                self.duckdb,
                dir.display(),
                rows.join(", ")
            ),
            format!(
                "events per type ({}, {} hour(s)): {}",
                QUERY_OUTPUT,
                self.hours,
                per_type.join(", ")
            ),
        ]
    }

    /// How the tables over the delivery streams' prefix disagree with
    /// `lines`, the verifier's count of the lines there (every delivered
    /// event and every extra copy); empty when they agree. The ready
    /// query's events must add up to the same.
    pub fn disagreements(&self, lake: &Lake, prefix: &str, lines: u64) -> Vec<String> {
        let mut found = Vec::new();
        for table in lake.tables.iter().filter(|t| t.prefix() == prefix) {
            let rows = self.rows.get(&table.name).copied().unwrap_or(0);
            if rows != lines {
                found.push(format!(
                    "DuckDB reads {rows} rows in {}, the verifier counted {lines} lines under {prefix}",
                    table.name
                ));
            }
        }
        let by_type: u64 = self.events_per_type.iter().map(|(_, n)| n).sum();
        if by_type != lines {
            found.push(format!("{QUERY_OUTPUT} counts {by_type} events, the verifier {lines}"));
        }
        found
    }
}

/// The Python of `.venv/duckdb`; `DUCKDB_PYTHON` overrides it.
pub fn duckdb_python() -> PathBuf {
    std::env::var_os("DUCKDB_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join(".venv/duckdb/bin/python"))
}

/// One SQL statement for `tools/duckdb-sql.py`; a named one prints its rows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Statement {
    pub sql: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Statement {
    fn run(sql: &str) -> Self {
        Statement {
            sql: sql.to_owned(),
            name: None,
        }
    }

    fn result(name: &str, sql: &str) -> Self {
        Statement {
            sql: sql.to_owned(),
            name: Some(name.to_owned()),
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct Rows {
    name: String,
    columns: Vec<String>,
    rows: Vec<Vec<serde_json::Value>>,
}

fn parse_results(stdout: &str) -> Result<Read> {
    let mut read = Read::default();
    let mut per_type: BTreeMap<String, u64> = BTreeMap::new();
    let mut hours = std::collections::BTreeSet::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let rows: Rows = serde_json::from_str(line).map_err(|e| format!("DuckDB's output {line:?}: {e}"))?;
        let first = |row: &[serde_json::Value]| row.first().cloned().unwrap_or_default();
        if let Some(table) = rows.name.strip_prefix("rows ") {
            let count = rows.rows.first().and_then(|r| first(r).as_u64()).unwrap_or(0);
            read.rows.insert(table.to_owned(), count);
        } else if rows.name == "version" {
            read.duckdb = rows
                .rows
                .first()
                .map(|r| first(r))
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
        } else if rows.name == "query" {
            let column = |name: &str| rows.columns.iter().position(|c| c == name);
            let (Some(ty), Some(events)) = (column(kinesis_firehose_bridge::event::EVENT_TYPE), column("events"))
            else {
                return Err(format!(
                    "the ready query gives no event_type and events columns: {:?}",
                    rows.columns
                )
                .into());
            };
            for row in &rows.rows {
                let name = row[ty].as_str().unwrap_or("(null)").to_owned();
                *per_type.entry(name).or_default() += row[events].as_u64().unwrap_or(0);
                hours.insert(
                    row.iter()
                        .enumerate()
                        .filter(|(i, _)| *i != ty && *i != events)
                        .map(|(_, v)| v.to_string())
                        .collect::<Vec<_>>(),
                );
            }
        }
    }
    let mut per_type: Vec<(String, u64)> = per_type.into_iter().collect();
    per_type.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    read.events_per_type = per_type;
    read.hours = hours.len() as u64;
    Ok(read)
}

/// A table of the template, from its `TableInput`.
fn table(input: &Value) -> Result<Table> {
    let text = |v: &Value, what: &str| -> Result<String> {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{what} is not a string").into())
    };
    let columns = |v: &Value| -> Result<Vec<(String, String)>> {
        v.as_sequence()
            .into_iter()
            .flatten()
            .map(|c| {
                Ok((
                    text(&c["Name"], "a column's Name")?,
                    text(&c["Type"], "a column's Type")?,
                ))
            })
            .collect()
    };
    let name = text(&input["Name"], "Name")?;
    let parameters = &input["Parameters"];
    let location = sub_text(&parameters["storage.location.template"])
        .ok_or("no storage.location.template !Sub (partition projection)")?;
    // `s3://${Bucket}/events/year=${!year}/…`: inside the bucket, and
    // `${!x}` is the literal `${x}`.
    let path = location
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .map(|(_, path)| path.replace("${!", "${"))
        .ok_or_else(|| format!("storage.location.template {location} is not s3://bucket/…"))?;
    let partitions: Vec<String> = columns(&input["PartitionKeys"])?.into_iter().map(|(n, _)| n).collect();
    let timestamp_fields = partitions
        .iter()
        .map(|p| {
            timestamp_field(parameters, p)
                .ok_or_else(|| format!("partition {p} does not project a Firehose timestamp field"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let serde = &input["StorageDescriptor"]["SerdeInfo"];
    let library = text(&serde["SerializationLibrary"], "SerializationLibrary")?;
    let format = if library.ends_with(".JsonSerDe") {
        Format::JsonLines
    } else if library.ends_with(".LazySimpleSerDe") && serde["Parameters"]["field.delim"].as_str() == Some("\u{1}") {
        Format::WholeLines
    } else {
        return Err(format!("SerDe {library} is neither JSON nor whole lines").into());
    };
    Ok(Table {
        name,
        columns: columns(&input["StorageDescriptor"]["Columns"])?,
        partitions,
        path,
        timestamp_fields,
        format,
    })
}

/// The text of `!Sub text`.
fn sub_text(value: &Value) -> Option<&str> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Sub" => tagged.value.as_str(),
        _ => None,
    }
}

/// Which field of Firehose's `!{timestamp:…}` an integer partition
/// projection renders: the four-digit year (0), or the two-digit month
/// (1), day (2) or hour (3).
fn timestamp_field(parameters: &Value, column: &str) -> Option<usize> {
    let get = |what: &str| parameters[format!("projection.{column}.{what}").as_str()].as_str();
    if get("type")? != "integer" {
        return None;
    }
    let (low, high) = get("range")?.split_once(',')?;
    let (low, high): (u32, u32) = (low.trim().parse().ok()?, high.trim().parse().ok()?);
    match (get("digits")?, low, high) {
        ("4", _, _) => Some(0),
        ("2", 1, 12) => Some(1),
        ("2", 1, 31) => Some(2),
        ("2", 0, 23) => Some(3),
        _ => None,
    }
}

/// DuckDB's name for a Hive type: `string`, `bigint`, `int`, `double`,
/// `boolean`, `array<T>`, `struct<name:T,…>`.
pub fn duckdb_type(hive: &str) -> Result<String> {
    let hive = hive.trim();
    if let Some(inner) = hive.strip_prefix("array<").and_then(|t| t.strip_suffix('>')) {
        return Ok(format!("{}[]", duckdb_type(inner)?));
    }
    if let Some(inner) = hive.strip_prefix("struct<").and_then(|t| t.strip_suffix('>')) {
        let fields = split_top_level(inner)
            .into_iter()
            .map(|field| {
                let (name, ty) = field
                    .split_once(':')
                    .ok_or_else(|| format!("struct field {field:?} has no type"))?;
                Ok(format!("\"{}\" {}", name.trim(), duckdb_type(ty)?))
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok(format!("STRUCT({})", fields.join(", ")));
    }
    Ok(match hive {
        "string" => "VARCHAR",
        "bigint" => "BIGINT",
        "int" => "INTEGER",
        "double" => "DOUBLE",
        "boolean" => "BOOLEAN",
        other => return Err(format!("no DuckDB type for the Hive type {other}").into()),
    }
    .to_owned())
}

/// `a:x,b:struct<c:y,d:z>` into its fields at the outer level.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut fields, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                fields.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(&text[start..]);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lake() -> Lake {
        Lake::from_repo().unwrap()
    }

    #[test]
    fn reads_the_template_s_tables_and_query() {
        let lake = lake();
        let events = lake.tables.iter().find(|t| t.name == "events").unwrap();
        assert_eq!(events.prefix(), "events/");
        assert_eq!(events.partitions, ["year", "month", "day", "hour"]);
        assert_eq!(events.timestamp_fields, [0, 1, 2, 3]);
        assert_eq!(events.format, Format::JsonLines);
        let raw = lake.tables.iter().find(|t| t.name == "events_raw").unwrap();
        assert_eq!(raw.format, Format::WholeLines);
        let rejects = lake.tables.iter().find(|t| t.name == "rejects").unwrap();
        assert_eq!(rejects.prefix(), "rejects/");
        assert!(lake.query.contains("FROM \"lake\".\"events\""), "{}", lake.query);
    }

    #[test]
    fn lays_moto_s_hour_folders_out_as_the_table_s_partitions() {
        let lake = lake();
        let events = lake.tables.iter().find(|t| t.name == "events").unwrap();
        assert_eq!(
            events
                .lake_path("events/2026/01/02/03/analytics-events-0-abc")
                .as_deref(),
            Some("events/year=2026/month=01/day=02/hour=03/analytics-events-0-abc")
        );
        assert_eq!(events.lake_path("rejects/2026/01/02/03/x"), None);
        assert_eq!(events.lake_path("events/odd/key"), None);
    }

    #[test]
    fn maps_hive_types_to_duckdb_s() {
        assert_eq!(duckdb_type("array<string>").unwrap(), "VARCHAR[]");
        assert_eq!(
            duckdb_type("struct<group:string,index:bigint,count:bigint>").unwrap(),
            "STRUCT(\"group\" VARCHAR, \"index\" BIGINT, \"count\" BIGINT)"
        );
        assert!(duckdb_type("map<string,string>").is_err());
    }
}
