//! Lab 6 under strace: the daemon started, asked its status, stopped.

use crate::error::Result;
use crate::trace::{until, wait_child, Tracer, PATIENCE};
use std::process::{Command, Stdio};

/// Lab 6: `start` (traced until the daemon ends), `status`, then `stop`.
pub fn scenario(t: &Tracer, argv: &dyn Fn(&str) -> Vec<String>) -> Result<()> {
    let mut start = t.spawn(&argv("start"))?;
    let status = argv("status");
    let r = (|| {
        until("the daemon to be running (status exits 0)", || {
            Command::new(&status[0])
                .args(&status[1..])
                .current_dir(&t.cwd)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .ok()
                .filter(|s| s.success())
        })?;
        t.run(&status)?;
        t.run(&argv("stop"))
    })();
    let end = wait_child(&mut start, PATIENCE);
    r.and(end).map(|_| ())
}
