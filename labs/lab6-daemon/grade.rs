//! Lab 6's contract, judged: the same implementation run as a sequence of commands on one DIR —
//! `start`, `start` again, `status`, `stop`, `status` (see labs/lab6-daemon/README.md) — and the
//! daemon inspected from outside in between: session, terminal, cwd, descriptors, pidfile lock.
//!
//! Without ptrace (a traced daemon would stop once the grader stops serving it): the grader is a
//! subreaper, so the daemon becomes its child when the launcher and middle process exit.

use crate::grade::checks::{self, Checks, SKIP_TIMEOUT};
use crate::grade::harness::Outcome;
use crate::grade::report::Check;
use crate::spec::Contract;
use nix::unistd::Pid;
use std::path::Path;
use std::time::Duration;

/// The steps, in order: the command's first argument.
pub const STEPS: [&str; 5] = ["start", "start", "status", "stop", "status"];

/// Judges the five steps' outcomes (`steps[i]` is None if not run: an earlier step timed out).
pub fn judge(
    steps: &[Option<Outcome>],
    daemon_facts: Option<&Facts>,
    stop_facts: &StopFacts,
    leftovers: &[(i32, String)],
    dir: &Path,
    c: &Contract,
    timeout_s: f64,
) -> Vec<Check> {
    let empty = Outcome::default();
    let first = steps.first().and_then(|s| s.as_ref()).unwrap_or(&empty);
    let mut k = Checks::new(c, first);
    let timed_out: Vec<usize> = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.as_ref().is_none_or(|o| o.timed_out))
        .map(|(i, _)| i)
        .collect();
    let code = |i: usize| {
        steps
            .get(i)
            .and_then(|s| s.as_ref())
            .and_then(|o| o.main_status)
            .map(|st| crate::process::shell_status(&st))
    };
    let stderr = |i: usize| {
        steps
            .get(i)
            .and_then(|s| s.as_ref())
            .map(|o| {
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_default()
    };

    // start
    let started = match (code(0), daemon_facts) {
        (Some(0), Some(f)) => {
            k.add(
                "start",
                true,
                format!("start exited 0 and left daemon {} running", f.pid),
            );
            true
        }
        (Some(0), None) => {
            k.add(
                "start",
                false,
                "start exited 0 but left no process running: the daemon must outlive its launcher",
            );
            false
        }
        (Some(n), _) => {
            k.add("start", false, format!("start exited {n}: {}", stderr(0)));
            false
        }
        (None, _) => {
            k.add("start", false, format!("start did not exit within {timeout_s} s: the launcher must return once the daemon is ready"));
            false
        }
    };

    // daemonized and pidfile
    match daemon_facts {
        Some(f) => {
            let mut bad = Vec::new();
            if f.session == f.launcher_session {
                bad.push(format!("it is still in its launcher's session ({}): call setsid() in the first child, so no hang-up or Ctrl-C of that session reaches it", f.session));
            } else if f.session_leader {
                bad.push("it is a session leader (fork a second time after setsid)".to_string());
            }
            if f.has_tty {
                bad.push("it has a controlling terminal (setsid)".into());
            }
            if f.cwd != "/" {
                bad.push(format!("its cwd is {} (chdir(\"/\"))", f.cwd));
            }
            for (fd, target) in &f.stdio {
                if target != "/dev/null" {
                    bad.push(format!("fd {fd} is {target} (point 0, 1, 2 at /dev/null)"));
                }
            }
            if !f.inherited.is_empty() {
                bad.push(format!(
                    "it kept descriptors its launcher gave it: {} (close every inherited fd above 2 before the first fork's child goes on; the daemon's own, like its locked pidfile, stay)",
                    f.inherited.join(", ")
                ));
            }
            k.add(
                "daemonized",
                bad.is_empty(),
                if bad.is_empty() {
                    "no session leader, no terminal, cwd /, stdio on /dev/null".into()
                } else {
                    format!("the daemon (pid {}): {}", f.pid, bad.join("; "))
                },
            );
            let pf = match (&f.pidfile_pid, f.pidfile_locked) {
                (Some(p), true) if *p == f.pid => {
                    (true, format!("DIR/daemon.pid holds {p} and is locked"))
                }
                (Some(p), _) if *p != f.pid => (
                    false,
                    format!("DIR/daemon.pid holds {p}, but the daemon is {}", f.pid),
                ),
                (Some(_), _) => (
                    false,
                    "DIR/daemon.pid is not locked: hold flock(LOCK_EX) on it while the daemon runs"
                        .into(),
                ),
                (None, _) => (false, "no DIR/daemon.pid with the daemon's pid".into()),
            };
            k.add("pidfile", pf.0, pf.1);
        }
        None => {
            k.skip("daemonized", "skipped: no daemon was started");
            k.skip("pidfile", "skipped: no daemon was started");
        }
    }

    // second start
    if !started {
        k.skip("second-start", "skipped: no daemon was started");
    } else {
        let extra = steps
            .get(1)
            .and_then(|s| s.as_ref())
            .map(|o| o.survivors.len())
            .unwrap_or(0);
        match code(1) {
            None => k.skip("second-start", SKIP_TIMEOUT),
            Some(0) => k.add(
                "second-start",
                false,
                "a second start exited 0: it must be refused while the daemon runs",
            ),
            Some(_) if extra > 0 => k.add(
                "second-start",
                false,
                format!("the second start was refused but left {extra} new process(es) running"),
            ),
            Some(n) => k.add("second-start", true, format!("refused with status {n}")),
        }
    }

    // status and stop
    if !started {
        k.skip("status", "skipped: no daemon was started");
        k.skip("stop", "skipped: no daemon was started");
    } else {
        match (code(2), code(4)) {
            (Some(0), Some(3)) => k.add(
                "status",
                true,
                "status exited 0 while running, 3 once stopped",
            ),
            (a, b) => k.add(
                "status",
                false,
                format!(
                    "status exited {} while running and {} once stopped: LSB wants 0 and 3",
                    show(a),
                    show(b)
                ),
            ),
        }
        let mut bad = Vec::new();
        match code(3) {
            Some(0) => {}
            other => bad.push(format!("stop exited {}", show(other))),
        }
        if stop_facts.alive_after_stop {
            bad.push(
                "the daemon was still running when stop returned: stop must wait for it to exit"
                    .into(),
            );
        }
        match stop_facts.daemon_status {
            Some(0) => {}
            Some(n) => bad.push(format!(
                "the daemon ended with status {n} (on SIGTERM it should clean up and exit 0)"
            )),
            None => bad.push("the daemon never exited".into()),
        }
        if dir.join("daemon.pid").exists() {
            bad.push("DIR/daemon.pid is still there: remove it on SIGTERM".into());
        }
        k.add(
            "stop",
            bad.is_empty(),
            if bad.is_empty() {
                "stop exited 0 after the daemon exited 0 and removed its pidfile".into()
            } else {
                bad.join("; ")
            },
        );
    }

    // The hygiene checks judge what the steps started: where none started a process, they
    // have no subject (an empty program scores nothing).
    let forked = steps
        .iter()
        .flatten()
        .any(|o| o.procs.keys().any(|p| *p != o.main_pid));
    if !forked && !started {
        for name in ["no-zombies", "no-leftover-processes", "timeout"] {
            k.skip(name, checks::SKIP_NO_CHILD);
        }
        return k.list;
    }

    // no-zombies over every step
    let mut z = Vec::new();
    for (i, o) in steps.iter().enumerate() {
        let Some(o) = o else { continue };
        for pid in &o.adopted_zombies {
            z.push(format!(
                "{} (step {}): process {pid} had exited but was never reaped by its parent",
                STEPS[i],
                i + 1
            ));
        }
        for (pid, d, _) in &o.lingered {
            z.push(format!(
                "{} (step {}): process {pid} stayed a zombie for {} ms",
                STEPS[i],
                i + 1,
                d.as_millis()
            ));
        }
    }
    k.add(
        "no-zombies",
        z.is_empty(),
        if z.is_empty() {
            "no process stayed a zombie".into()
        } else {
            z.join("; ")
        },
    );

    if leftovers.is_empty() {
        k.add(
            "no-leftover-processes",
            true,
            "nothing was left running after stop",
        );
    } else {
        let list: Vec<String> = leftovers
            .iter()
            .map(|(p, w)| format!("pid {p} ({w})"))
            .collect();
        k.add(
            "no-leftover-processes",
            false,
            format!(
                "still running after stop: {} (the grader killed it)",
                list.join(", ")
            ),
        );
    }
    if timed_out.is_empty() {
        k.add("timeout", true, "every step finished in time");
    } else {
        let names: Vec<String> = timed_out
            .iter()
            .map(|i| format!("{} (step {})", STEPS[*i], i + 1))
            .collect();
        k.add(
            "timeout",
            false,
            format!("did not finish within {timeout_s} s: {}", names.join(", ")),
        );
    }
    k.list
}

fn show(c: Option<i32>) -> String {
    c.map(|n| n.to_string())
        .unwrap_or_else(|| "nothing (timed out)".into())
}

/// What the grader sees of the daemon after `start`.
#[derive(Debug, Clone)]
pub struct Facts {
    pub pid: i32,
    /// Its session, and its launcher's (main of `start`, which the box made a session leader).
    pub session: i32,
    pub launcher_session: i32,
    pub session_leader: bool,
    pub has_tty: bool,
    pub cwd: String,
    pub stdio: Vec<(i32, String)>,
    pub extra_fds: Vec<String>,
    /// Of those, the ones it inherited: the launcher's stdout/stderr pipes (what the grader
    /// gave it), a terminal. The daemon's own (a self-pipe, its locked pidfile) are not.
    pub inherited: Vec<String>,
    pub pidfile_pid: Option<i32>,
    pub pidfile_locked: bool,
}

impl Facts {
    /// What the grader saw of the daemon, for the transcript.
    pub fn describe(&self) -> String {
        let stdio: Vec<String> = self
            .stdio
            .iter()
            .map(|(fd, t)| format!("{fd} -> {t}"))
            .collect();
        format!(
            "daemon pid {}: session {} (its launcher's: {}), session leader: {}, controlling terminal: {}, cwd {}\nfds {}; above 2: {}\npidfile: {} ({})",
            self.pid,
            self.session,
            self.launcher_session,
            if self.session_leader { "yes" } else { "no" },
            if self.has_tty { "yes" } else { "none" },
            self.cwd,
            stdio.join(", "),
            if self.extra_fds.is_empty() { "none".into() } else { self.extra_fds.join(", ") },
            self.pidfile_pid.map_or("no pid in it".into(), |p| format!("holds {p}")),
            if self.pidfile_locked { "locked" } else { "not locked" },
        )
    }
}

#[derive(Debug, Clone, Default)]
pub struct StopFacts {
    pub alive_after_stop: bool,
    pub daemon_status: Option<i32>,
}

pub fn inspect(pid: i32, dir: &Path, launcher: &Outcome) -> Facts {
    let info = crate::inspect::info(pid);
    let link = |what: &str| {
        std::fs::read_link(format!("/proc/{pid}/{what}"))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "?".into())
    };
    let stdio = (0..=2).map(|fd| (fd, link(&format!("fd/{fd}")))).collect();
    let extra_fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.parse::<i32>().ok())
                        .is_some_and(|n| n > 2)
                })
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    let inherited = extra_fds
        .iter()
        .filter(|t: &&String| {
            launcher.stdio_pipes.contains(t)
                || t.starts_with("/dev/pts")
                || t.starts_with("/dev/tty")
        })
        .cloned()
        .collect();
    let pidfile = dir.join("daemon.pid");
    let pidfile_pid = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let pidfile_locked = matches!(
        crate::daemon::probe(&pidfile),
        Ok(crate::daemon::PidState::Running(_))
    );
    let launcher_session =
        crate::inspect::info(launcher.main_pid).map_or(launcher.main_pid, |i| i.session);
    Facts {
        pid,
        session: info.as_ref().map_or(0, |i| i.session),
        launcher_session,
        inherited,
        session_leader: info.as_ref().is_some_and(|i| i.session == pid),
        has_tty: info.as_ref().is_some_and(|i| i.tty_nr != 0),
        cwd: link("cwd"),
        stdio,
        extra_fds,
        pidfile_pid,
        pidfile_locked,
    }
}

/// After `stop` returned: was the daemon already gone? Then reap it (our child, as subreaper),
/// waiting a little as a safety net, and return its exit status.
pub fn after_stop(pid: i32) -> StopFacts {
    let alive = crate::inspect::info(pid).is_some_and(|i| !i.is_zombie());
    let mut facts = StopFacts {
        alive_after_stop: alive,
        daemon_status: None,
    };
    let Ok(fd) = crate::process::pidfd_open(Pid::from_raw(pid)) else {
        return facts;
    };
    let exited = crate::signals::poll_fds(
        &[std::os::fd::AsFd::as_fd(&fd)],
        Some(Duration::from_secs(5)),
    )
    .map(|r| r[0])
    .unwrap_or(false);
    if exited {
        if let Ok(st) = nix::sys::wait::waitpid(Pid::from_raw(pid), None) {
            facts.daemon_status = Some(crate::process::shell_status(&st));
        }
    }
    facts
}
