//! Child processes this crate starts (moto, `cargo lambda watch`), each in
//! a process group of its own and ended by its id.
//!
//! A group of its own keeps the terminal's Ctrl-C away from the children:
//! the parent receives it, finishes what it is doing and ends them itself,
//! in order. Ending signals the group whose id is the child's pid, so helper
//! processes the child started (cargo's builds, the function under `cargo
//! lambda watch`) end with it. On Linux the child also gets SIGTERM should
//! the parent die without cleaning up (a panic in a test, a SIGKILL).

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::Result;

/// Whether children started from now on outlive this process (`make invoke
/// KEEP=1`): no death signal, not ended on drop.
static OUTLIVE: AtomicBool = AtomicBool::new(false);

/// Children started from now on keep running after this process exits;
/// the caller tells the user how to end them.
pub fn outlive_this_process() {
    OUTLIVE.store(true, Ordering::Relaxed);
}

/// A running child process; dropping it ends the process and its group,
/// unless [`outlive_this_process`] was called before it started.
#[derive(Debug)]
pub struct Guarded {
    name: String,
    child: Option<Child>,
    outlives: bool,
}

impl Guarded {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Self> {
        let out = File::create(log).map_err(|e| format!("{name}: cannot create its log {}: {e}", log.display()))?;
        let err = out.try_clone()?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        let outlives = OUTLIVE.load(Ordering::Relaxed);
        detach(&mut command, !outlives);
        let child = command
            .spawn()
            .map_err(|e| format!("{name}: cannot start {:?}: {e}", command.get_program()))?;
        Ok(Guarded {
            name: name.to_owned(),
            child: Some(child),
            outlives,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// CPU seconds (user and system) the process has used so far.
    pub fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds(self.pid())
    }

    /// `Some(status)` when the process has already exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Ends the process group (SIGTERM, then SIGKILL after `grace`) and
    /// reaps the child.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else { return };
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        let pid = child.id() as i32;
        signal_group(pid, libc::SIGTERM);
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if child.try_wait().ok().flatten().is_some() {
                // The leader is gone; make sure no helper outlives it.
                signal_group(pid, libc::SIGKILL);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal_group(pid, libc::SIGKILL);
        let _ = child.kill();
        let _ = child.wait();
        eprintln!(
            "{} (pid {pid}) did not stop on SIGTERM within {grace:?}; killed",
            self.name
        );
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if !self.outlives {
            self.stop(Duration::from_secs(3));
        }
    }
}

/// CPU seconds (user and system) process `pid` has used, from
/// `/proc/PID/stat`; `None` where there is no such file.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; count from after it.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) / ticks as f64)
}

fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group whose
    // id is our child's pid; it has no memory-safety preconditions.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

#[cfg(target_os = "linux")]
fn detach(command: &mut Command, end_with_parent: bool) {
    use std::os::unix::process::CommandExt;
    command.process_group(0);
    if end_with_parent {
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe, allocates
        // nothing, and only affects the child between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
}

#[cfg(all(unix, not(target_os = "linux")))]
fn detach(command: &mut Command, _end_with_parent: bool) {
    use std::os::unix::process::CommandExt;
    command.process_group(0);
}
