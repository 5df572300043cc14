//! Lab 3 under strace: a server killed mid-exchange, its restart, then the orderly shutdown.

use crate::error::{Error, Result};
use crate::trace::{tracee, until, wait_child, Tracer, PATIENCE};
use std::path::Path;

/// Lab 3: every server started (K+1 `start` events), the last one SIGKILLed, its restart
/// logged, then SIGTERM to the watchdog (the orderly shutdown).
pub fn scenario(t: &Tracer, argv: &[String], events: &Path, k: usize) -> Result<()> {
    let mut strace = t.spawn(argv)?;
    let started =
        |log: crate::evlog::Log| -> Vec<i64> { log.named("start").filter_map(|e| e.pid).collect() };
    let r = (|| {
        let first = until("every server's start event", || {
            let s = started(crate::evlog::Log::read(events));
            (s.len() > k).then_some(s)
        })?;
        let victim = *first.last().unwrap_or(&0);
        // Killed once it has read from DIR (its FIFO): mid-exchange, as the lab shows it.
        let file = t.base.with_extension(victim.to_string());
        let dir = t.cwd.with_file_name("dir").display().to_string();
        until("the server to read from its FIFO", || {
            std::fs::read_to_string(&file)
                .ok()
                .filter(|s| s.lines().any(|l| l.contains(" read(") && l.contains(&dir)))
        })?;
        t.signal(victim as i32, nix::sys::signal::Signal::SIGKILL)?;
        until("the killed server's restart", || {
            (started(crate::evlog::Log::read(events)).len() > first.len()).then_some(())
        })?;
        let wd = tracee(&strace).ok_or_else(|| Error::runtime("the watchdog is gone"))?;
        t.signal(wd, nix::sys::signal::Signal::SIGTERM)
    })();
    let end = wait_child(&mut strace, PATIENCE);
    r.and(end.map(|_| ()))
}
