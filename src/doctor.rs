//! `ipclab doctor` (first version): can the labs run here, and what will differ from the lab text.

use crate::{fifo, process, shm};

/// One finding: `ok`, `warn` (labs run, something differs) or `FAIL` (a lab cannot run).
pub struct Finding {
    pub level: &'static str,
    pub what: String,
}

pub fn examine() -> Vec<Finding> {
    let mut out = Vec::new();
    let mut push = |level, what: String| out.push(Finding { level, what });

    let uid = nix::unistd::getuid();
    push(
        "ok",
        format!(
            "running as uid {uid}{}",
            if uid.is_root() {
                " (root: students will not be; run the labs as another user too)"
            } else {
                ""
            }
        ),
    );

    let name = shm::unique_name("ipclab-doctor");
    match shm::Segment::create(&name, 4096) {
        Ok(_seg) => push(
            "ok",
            "/dev/shm: shm_open(O_CREAT|O_EXCL, 0600) and shm_unlink work".into(),
        ),
        Err(e) => push("FAIL", format!("/dev/shm: {e}")),
    }

    match fifo::private_dir()
        .and_then(|d| fifo::FifoPair::create(d.path(), "ping", "pong").map(|_| ()))
    {
        Ok(()) => push(
            "ok",
            "FIFOs: mkfifo 0600 in a private 0700 directory works".into(),
        ),
        Err(e) => push("FAIL", format!("FIFOs: {e}")),
    }

    let was = process::is_child_subreaper();
    match process::set_child_subreaper() {
        Ok(()) => {
            if !was {
                let _ = process::clear_child_subreaper();
            }
            push("ok", "prctl(PR_SET_CHILD_SUBREAPER) works".into());
        }
        Err(e) => push("FAIL", format!("subreaper: {e}")),
    }

    match process::pidfd_open(nix::unistd::getpid()) {
        Ok(_) => push("ok", "pidfd_open works".into()),
        Err(e) => push("FAIL", format!("pidfd_open (Linux >= 5.3 needed): {e}")),
    }

    match crate::walkthrough::strace_usable() {
        Ok(v) => push("ok", format!("strace: {v}, ptrace allowed")),
        Err(why) => push(
            "warn",
            format!("strace: {why}; walkthroughs skip their strace steps"),
        ),
    }
    let pid1 = crate::inspect::info(1)
        .map(|p| p.comm)
        .unwrap_or_else(|| "?".into());
    push(
        "ok",
        format!("PID 1 is {pid1}: orphans not under a subreaper go to it"),
    );
    out
}
