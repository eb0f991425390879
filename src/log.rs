//! The lines the function writes on purpose: each one JSON object with
//! Lambda's `timestamp`, `level` and `message` fields, written whole to a
//! [`LogSink`] whatever the tracing filter says. A log line is a diagnostic:
//! no event's only copy is ever in the log.

use std::io::Write;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Where the function's lines go: stdout under Lambda, a file in the local
/// pipeline, a buffer in tests.
pub trait LogSink: Send + Sync {
    /// Writes one whole line (newline included) or fails.
    fn write_line(&self, line: &[u8]) -> std::io::Result<()>;
}

/// The process's stdout, which Lambda ships to CloudWatch Logs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stdout;

impl LogSink for Stdout {
    fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
        // One `write_all` under the lock keeps the line whole.
        let mut out = std::io::stdout().lock();
        out.write_all(line)?;
        out.flush()
    }
}

/// One JSON log line, newline included, with the `timestamp`, `level` and
/// `message` fields Lambda's JSON log format reads, and `body`'s fields.
pub fn log_line(level: &str, message: &str, body: &impl Serialize) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    append_log_line(&mut bytes, level, message, body)?;
    Ok(bytes)
}

/// Appends a [`log_line`] to `out`; on error `out` is left as it was.
pub fn append_log_line(out: &mut Vec<u8>, level: &str, message: &str, body: &impl Serialize) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct Line<'a, B> {
        timestamp: String,
        level: &'a str,
        message: &'a str,
        #[serde(flatten)]
        body: &'a B,
    }
    let line = Line {
        timestamp: OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
        level,
        message,
        body,
    };
    let start = out.len();
    if let Err(e) = serde_json::to_writer(&mut *out, &line) {
        out.truncate(start);
        return Err(e.into());
    }
    out.push(b'\n');
    Ok(())
}

/// Log lines, one after another in one buffer: the body of an S3 object as
/// it is, or the log's lines one by one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lines {
    bytes: Vec<u8>,
    count: usize,
}

impl Lines {
    /// Appends one [`log_line`]. Serialising the bridge's own structs of
    /// strings and numbers cannot fail; should it, the line says what was
    /// lost instead.
    pub fn push(&mut self, level: &str, message: &str, body: &impl Serialize) {
        if let Err(e) = append_log_line(&mut self.bytes, level, message, body) {
            let trace = serde_json::json!({"error": format!("unserialisable line: {e}")});
            let _ = append_log_line(&mut self.bytes, level, message, &trace);
        }
        self.count += 1;
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every line, its newline included.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.bytes.split_inclusive(|&b| b == b'\n')
    }

    /// The lines as one body.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Writes a [`log_line`] to `sink`.
pub fn write_line(sink: &impl LogSink, level: &str, message: &str, body: &impl Serialize) -> std::io::Result<()> {
    sink.write_line(&log_line(level, message, body)?)
}
