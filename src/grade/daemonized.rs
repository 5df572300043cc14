//! A daemon seen from outside (labs 6 and 9 judge it): its session and its launcher's, its
//! terminal, cwd, descriptors, and its pidfile with its lock. Read from /proc, no ptrace: a
//! traced daemon would stop once the grader stops serving it.

use crate::grade::harness::Outcome;
use std::path::Path;

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
        let fr = crate::lang::fr();
        let yes_no = |b: bool, no_en: &'static str, no_fr: &'static str| match (b, fr) {
            (true, false) => "yes",
            (true, true) => "oui",
            (false, false) => no_en,
            (false, true) => no_fr,
        };
        let extra = if self.extra_fds.is_empty() {
            tf!("none", "aucun")
        } else {
            self.extra_fds.join(", ")
        };
        let pidfile = self
            .pidfile_pid
            .map_or(tf!("no pid in it", "pas de pid dedans"), |p| {
                tf!("holds {p}", "contient {p}")
            });
        let locked = if self.pidfile_locked {
            tf!("locked", "verrouillé")
        } else {
            tf!("not locked", "non verrouillé")
        };
        tf!(
            "daemon pid {}: session {} (its launcher's: {}), session leader: {}, controlling terminal: {}, cwd {}\nfds {}; above 2: {extra}\npidfile: {pidfile} ({locked})",
            "démon de pid {} : session {} (celle de son lanceur : {}), leader de session : {}, terminal de contrôle : {}, cwd {}\nfd {} ; au-dessus de 2 : {extra}\nfichier de pid : {pidfile} ({locked})",
            self.pid,
            self.session,
            self.launcher_session,
            yes_no(self.session_leader, "no", "non"),
            yes_no(self.has_tty, "none", "aucun"),
            self.cwd,
            stdio.join(", "),
        )
    }
}

/// The daemon `pid` as seen from outside, its pidfile `pidfile`, `launcher` the run that started it.
pub fn inspect(pid: i32, pidfile: &Path, launcher: &Outcome) -> Facts {
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
    let pidfile_pid =
        crate::grade::checks::read_box_file(pidfile, 64).and_then(|s| s.trim().parse().ok());
    let pidfile_locked = matches!(
        crate::grade::checks::open_box_file(pidfile).map(crate::daemon::probe_file),
        Some(Ok(crate::daemon::PidState::Running(_)))
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
