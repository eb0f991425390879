//! The local AWS APIs, each a server process on a free port of 127.0.0.1.
//!
//! - **kinesalite** (Node.js, pinned in `tools/kinesalite/package-lock.json`,
//!   installed into `.venv/kinesalite` by `make kinesalite`): the Kinesis
//!   stream. It holds the demo's rate where moto's Kinesis fell behind as
//!   the stream grew and, under concurrent writers, gave two records one
//!   sequence number. It keeps records in LevelDB under the
//!   run folder, so its memory stays bounded.
//! - **moto** (Python, pinned in `tools/requirements-moto.txt`, installed into
//!   `.venv/moto` by `make moto`): Firehose and the S3 bucket its delivery
//!   streams write to.
//!
//! Each [`Emulator`] logs outside the project folder and is ended by its pid
//! when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Result;
use crate::child::Guarded;

/// Where `make moto` installs the server; `MOTO_SERVER` overrides it.
pub fn moto_path() -> PathBuf {
    std::env::var_os("MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join(".venv/moto/bin/moto_server"))
}

/// Where `make kinesalite` installs its modules; `KINESALITE_MODULES`
/// overrides it.
pub fn kinesalite_modules() -> PathBuf {
    std::env::var_os("KINESALITE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join(".venv/kinesalite/node_modules"))
}

/// A running emulator.
#[derive(Debug)]
pub struct Emulator {
    name: &'static str,
    process: Guarded,
    port: u16,
    log: PathBuf,
}

impl Emulator {
    /// moto (Firehose and S3), from [`moto_path`].
    pub async fn moto(log_dir: &Path) -> Result<Self> {
        let server = moto_path();
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
        let mut command = Command::new(&server);
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        Self::start("moto_server", command, port, log_dir).await
    }

    /// kinesalite (Kinesis), its records in LevelDB under `log_dir`.
    pub async fn kinesalite(log_dir: &Path) -> Result<Self> {
        let modules = kinesalite_modules();
        if !modules.join("kinesalite").exists() {
            return Err(format!(
                "kinesalite is not installed: {} does not exist. Run `make kinesalite` in the repository root \
                 first (it installs the pinned kinesalite from tools/kinesalite/package-lock.json with npm), or \
                 set KINESALITE_MODULES to a node_modules folder that holds it.",
                modules.join("kinesalite").display()
            )
            .into());
        }
        let port = free_port()?;
        let store = log_dir.join(format!("kinesalite-{port}.db"));
        let node = std::env::var_os("NODE").unwrap_or_else(|| "node".into());
        let mut command = Command::new(node);
        command
            .arg(crate::repo_root().join("tools/kinesalite/serve.js"))
            .arg(port.to_string())
            .arg(&store)
            .env("KINESALITE_MODULES", &modules);
        Self::start("kinesalite", command, port, log_dir).await
    }

    async fn start(name: &'static str, command: Command, port: u16, log_dir: &Path) -> Result<Self> {
        let log = log_dir.join(format!("{name}-{port}.log"));
        let process = Guarded::spawn(name, command, &log)?;
        let mut emulator = Emulator {
            name,
            process,
            port,
            log,
        };
        emulator.wait_until_ready(Duration::from_secs(60)).await?;
        Ok(emulator)
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

    /// Whether the server has exited (it should not have).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.process.exited()
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
                let tail: Vec<&str> = tail.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(format!(
                    "{} exited ({status}) before answering; its log:\n{}",
                    self.name,
                    tail.join("\n")
                )
                .into());
            }
            if answers(self.port).await {
                return Ok(());
            }
            if Instant::now() > until {
                return Err(format!(
                    "{} (pid {}) did not answer on port {} within {limit:?}; see {}",
                    self.name,
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
            .write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
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
