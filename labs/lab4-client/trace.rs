//! Lab 4 under strace: one client served through the dispatcher and a worker.

use crate::error::{Error, Result};
use crate::trace::{tracee, until, wait_child, Tracer, PATIENCE};
use std::path::Path;
use std::process::{Command, Stdio};

/// Lab 4: the watchdog with its dispatcher and workers; once an untraced client is served, one
/// traced client; then SIGTERM to the watchdog.
pub fn scenario(t: &Tracer, argv: &[String], dir: &Path) -> Result<()> {
    let mut strace = t.spawn(argv)?;
    let client = crate::process::sibling_binary("client")?
        .display()
        .to_string();
    let dir_s = dir.display().to_string();
    let r = (|| {
        until("a first client to be served", || {
            Command::new(&client)
                .args(["--dir", &dir_s, "--request", "probe"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .ok()
                .filter(|s| s.success())
        })?;
        let code = t.run(&[
            client.clone(),
            "--dir".into(),
            dir_s.clone(),
            "--request".into(),
            "hello".into(),
        ])?;
        if code != 0 {
            return Err(Error::runtime(format!("the traced client exited {code}")));
        }
        let wd = tracee(&strace).ok_or_else(|| Error::runtime("the watchdog is gone"))?;
        t.signal(wd, nix::sys::signal::Signal::SIGTERM)
    })();
    let end = wait_child(&mut strace, PATIENCE);
    r.and(end.map(|_| ()))
}
