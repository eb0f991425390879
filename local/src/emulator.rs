//! moto in server mode: the local Kinesis, Firehose and S3.
//!
//! The pinned moto lives in `.venv/moto` (`make moto` creates it). Each
//! [`Moto`] runs its own server on a free port of 127.0.0.1, logs outside
//! the project folder, and is ended by its pid when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Result;
use crate::child::Guarded;

/// Where `make moto` installs the server; `MOTO_SERVER` overrides it.
pub fn server_path() -> PathBuf {
    std::env::var_os("MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join(".venv/moto/bin/moto_server"))
}

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    process: Guarded,
    port: u16,
    log: PathBuf,
}

impl Moto {
    /// Starts moto from [`server_path`] and waits until it answers.
    pub async fn start(log_dir: &Path) -> Result<Self> {
        let server = server_path();
        if !server.exists() {
            return Err(format!(
                "moto is not installed: {} does not exist. Run `make moto` in the repository root first \
                 (it creates .venv/moto with the pinned moto[server] from tools/requirements-moto.txt), \
                 or set MOTO_SERVER to a moto_server binary.",
                server.display()
            )
            .into());
        }
        let port = free_port()?;
        let log = log_dir.join(format!("moto-{port}.log"));
        let mut command = Command::new(&server);
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let process = Guarded::spawn("moto_server", command, &log)?;
        let mut moto = Moto { process, port, log };
        moto.wait_until_ready(Duration::from_secs(60)).await?;
        Ok(moto)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// CPU seconds the server has used so far.
    pub fn cpu_seconds(&self) -> Option<f64> {
        self.process.cpu_seconds()
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Ends the server now (dropping it does the same).
    pub fn stop(mut self) {
        self.process.stop(Duration::from_secs(3));
    }

    async fn wait_until_ready(&mut self, limit: Duration) -> Result<()> {
        let until = Instant::now() + limit;
        loop {
            if let Some(status) = self.process.exited() {
                let tail = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: String = tail
                    .lines()
                    .rev()
                    .take(15)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                return Err(format!("moto_server exited ({status}) before answering; its log:\n{tail}").into());
            }
            if answers(self.port).await {
                return Ok(());
            }
            if Instant::now() > until {
                return Err(format!(
                    "moto_server (pid {}) did not answer on port {} within {limit:?}; see {}",
                    self.pid(),
                    self.port,
                    self.log.display()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A port nobody listens on right now. The operating system picks it; the
/// short window before the server binds it is the usual, accepted race.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Whether an HTTP server on `port` answers a request with a status line.
async fn answers(port: u16) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream
            .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        head.starts_with(b"HTTP/").then_some(())
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
        .is_some()
}
