//! Lab 6: the daemon's life cycle, judged from outside: /proc, the pidfile lock, the log, exit codes.
//! This test binary is a child subreaper, so each daemon is re-parented to it and reaped here.

mod common;
use common::*;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

fn daemon(action: &str, dir: &Path) -> Command {
    let mut c = Command::new(bin("daemon"));
    c.arg(action).arg("--dir").arg(dir);
    c
}

fn start(dir: &Path) -> i32 {
    ipclab::process::set_child_subreaper().unwrap();
    let out = run(&mut daemon("start", dir));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    number_after(&text(&out.stdout), "daemon ").expect("pid in start's output")
}

/// Reaps the stopped daemon (our adopted child) and returns its exit status.
fn reap(pid: i32) -> WaitStatus {
    ipclab::process::wait_for(Pid::from_raw(pid)).unwrap()
}

fn link(pid: i32, what: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/{what}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// start: a daemon that is no session leader, has no terminal, runs in /, umask 0, stdio on
/// /dev/null, holds the pidfile; stop: it exits 0 and removes the pidfile; status follows LSB.
#[test]
fn lab6_start_status_stop_life_cycle() {
    let _forks = common::fork_guard();
    let dir = private_dir();
    let pid = start(dir.path());
    let info = ipclab::inspect::info(pid).unwrap();
    assert_ne!(info.session, pid, "must not be a session leader");
    assert_eq!(info.tty_nr, 0, "must have no controlling terminal");
    assert_eq!(
        info.ppid,
        std::process::id() as i32,
        "re-parented to the nearest subreaper"
    );
    assert_eq!(link(pid, "cwd"), "/");
    for fd in 0..=2 {
        assert_eq!(link(pid, &format!("fd/{fd}")), "/dev/null");
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains("Umask:\t0000"), "{status}");
    let pidfile = dir.path().join("daemon.pid");
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        pid.to_string()
    );

    let out = run(&mut daemon("status", dir.path()));
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("session leader: no, controlling terminal: none"));

    let out = run(&mut daemon("stop", dir.path()));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(reap(pid), WaitStatus::Exited(Pid::from_raw(pid), 0));
    assert!(!pidfile.exists());
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap();
    assert!(
        log.contains("started") && log.contains("SIGTERM: removing pidfile"),
        "{log}"
    );

    assert_eq!(
        run(&mut daemon("status", dir.path())).status.code(),
        Some(3)
    );
    let out = run(&mut daemon("stop", dir.path()));
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("not running"));
    Clean::new("ipclab-none").check();
}

/// A second start is refused with one line and exit 2; the first daemon is untouched.
#[test]
fn lab6_second_start_is_refused() {
    let _forks = common::fork_guard();
    let dir = private_dir();
    let pid = start(dir.path());
    let out = run(&mut daemon("start", dir.path()));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1);
    assert!(
        err.contains(&format!("already running (pid {pid}")),
        "{err}"
    );
    assert!(ipclab::inspect::is_alive(Pid::from_raw(pid)));
    assert_eq!(run(&mut daemon("stop", dir.path())).status.code(), Some(0));
    reap(pid);
    Clean::new("ipclab-none").check();
}

/// A pidfile left by a killed daemon is stale: status 3 says so, start takes it over.
#[test]
fn lab6_stale_pidfile_is_recovered() {
    let _forks = common::fork_guard();
    let dir = private_dir();
    let pid = start(dir.path());
    ipclab::process::signal(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    reap(pid);
    let out = run(&mut daemon("status", dir.path()));
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stdout).contains(&format!("stale pidfile names pid {pid}")));
    let pid2 = start(dir.path());
    assert_ne!(pid, pid2);
    assert_eq!(run(&mut daemon("stop", dir.path())).status.code(), Some(0));
    reap(pid2);
    Clean::new("ipclab-none").check();
}

/// SIGHUP reopens the log by name: after a rename, new lines go to a fresh daemon.log.
#[test]
fn lab6_sighup_reopens_the_log() {
    let _forks = common::fork_guard();
    let dir = private_dir();
    let pid = start(dir.path());
    let log = dir.path().join("daemon.log");
    std::fs::rename(&log, dir.path().join("daemon.log.1")).unwrap();
    ipclab::process::signal(Pid::from_raw(pid), nix::sys::signal::Signal::SIGHUP).unwrap();
    // stop waits for the exit; signals pending together are handled HUP first.
    assert_eq!(run(&mut daemon("stop", dir.path())).status.code(), Some(0));
    reap(pid);
    let new = std::fs::read_to_string(&log).unwrap();
    assert!(
        new.contains("SIGHUP: log reopened") && new.contains("SIGTERM"),
        "{new}"
    );
    let old = std::fs::read_to_string(dir.path().join("daemon.log.1")).unwrap();
    assert!(old.contains("started") && !old.contains("SIGTERM"), "{old}");
    Clean::new("ipclab-none").check();
}

/// --foreground: same pidfile and signals, without detaching.
#[test]
fn lab6_foreground_runs_attached_and_stops_on_sigterm() {
    let _forks = common::fork_guard();
    let dir = private_dir();
    let mut child = daemon("start", dir.path())
        .arg("--foreground")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = stderr_reader(&mut child);
    read_until(&mut err, "started in the foreground");
    let out = run(&mut daemon("status", dir.path()));
    assert!(text(&out.stdout).contains(&format!("pid {}", child.id())));
    ipclab::process::signal(
        Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(!dir.path().join("daemon.pid").exists());
    let _ = err.lines().count();
}

/// A pidfile directory that is missing, not a directory, or not writable: exit 2, one line.
#[test]
fn lab6_bad_directory_is_exit_2() {
    let _forks = common::fork_guard();
    let dir = private_dir();
    let file = dir.path().join("f");
    std::fs::write(&file, b"").unwrap();
    for (d, what) in [
        (dir.path().join("missing"), "ENOENT"),
        (file.clone(), "ENOTDIR"),
    ] {
        for action in ["start", "stop", "status"] {
            let out = run(&mut daemon(action, &d));
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{action} {what}: {err}");
            assert!(err.contains(what) && err.lines().count() == 1, "{err}");
        }
    }
    let bins = world_readable_bins(&["daemon"]);
    if let Some(mut cmd) = as_nobody(&bins.path().join("daemon")) {
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let out = run(cmd.arg("start").arg("--dir").arg(dir.path()));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("EACCES"), "{err}");
    }
    assert_eq!(dir_entries(dir.path()), ["f"]);
}

/// As a student: start, status, stop work for an unprivileged uid with D in its own directory.
#[test]
fn lab6_runs_as_unprivileged_user() {
    let _forks = common::fork_guard();
    let bins = world_readable_bins(&["daemon"]);
    let exe = bins.path().join("daemon");
    let Some(mut cmd) = as_nobody(&exe) else {
        return;
    };
    ipclab::process::set_child_subreaper().unwrap();
    let dir = nobody_dir();
    let out = run(cmd.arg("start").arg("--dir").arg(dir.path()));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let pid = number_after(&text(&out.stdout), "daemon ").unwrap();
    let uid = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(uid.contains(&format!("Uid:\t{NOBODY}")), "{uid}");
    let out = run(as_nobody(&exe)
        .unwrap()
        .arg("stop")
        .arg("--dir")
        .arg(dir.path()));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(reap(pid), WaitStatus::Exited(Pid::from_raw(pid), 0));
    Clean::new("ipclab-none").check();
}
