//! Lab 2: the pingpong reference against its grading contract, its faults, and bad input.
//! This test binary makes itself a child subreaper: orphans of a killed main come back to it.

mod common;
use common::*;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use rand::RngExt;
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};

fn subreaper() {
    ipclab::process::set_child_subreaper().unwrap();
}

fn pingpong(n: impl ToString, dir: &std::path::Path) -> Command {
    let mut c = Command::new(bin("pingpong"));
    c.arg("--exchanges")
        .arg(n.to_string())
        .arg("--dir")
        .arg(dir);
    c
}

fn expected(n: u64) -> String {
    (1..=n).map(|i| format!("ping {i}\npong {i}\n")).collect()
}

/// Contract: stdout is exactly ping i / pong i for random N, exit 0, FIFOs gone, nothing left.
#[test]
fn lab2_exchanges_print_exact_protocol_and_leave_nothing() {
    let _forks = common::fork_guard();
    let clean = Clean::new("ipclab-none");
    for _ in 0..3 {
        let n: u64 = rand::rng().random_range(1..=50);
        let dir = private_dir();
        let out = run(&mut pingpong(n, dir.path()));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), expected(n));
        assert!(text(&out.stderr).contains("exited with status 0; reaped"));
        assert!(dir_entries(dir.path()).is_empty());
    }
    clean.check();
}

/// `--stats --quiet` prints no protocol lines and the mean round trip, even for 100000 exchanges.
#[test]
fn lab2_stats_quiet_reports_mean_round_trip() {
    let _forks = common::fork_guard();
    let dir = private_dir();
    let out = run(pingpong(100_000, dir.path()).args(["--stats", "--quiet"]));
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(err.contains("100000 exchanges, mean round trip "), "{err}");
    Clean::new("ipclab-none").check();
}

/// Bad N or DIR: one line naming the problem, exit 2, nothing created.
#[test]
fn lab2_bad_input_is_one_line_exit_2() {
    let _forks = common::fork_guard();
    let dir = private_dir();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let missing = dir.path().join("missing");
    let cases: Vec<(Command, &str)> = vec![
        (pingpong("0", dir.path()), "0 is not in 1..="),
        (pingpong("-3", dir.path()), "--exchanges"),
        (pingpong("abc", dir.path()), "invalid digit"),
        (pingpong("99999999999", dir.path()), "not in 1..="),
        (pingpong(3, &missing), "ENOENT"),
        (pingpong(3, &file), "ENOTDIR"),
    ];
    for (mut cmd, what) in cases {
        let out = run(&mut cmd);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(what), "{what} not in {err}");
        assert!(out.stdout.is_empty());
    }
    assert_eq!(dir_entries(dir.path()), ["plain-file"]);
}

/// An existing DIR/ping is reported (EEXIST), left untouched, and no pong is created.
#[test]
fn lab2_existing_fifo_path_is_refused_and_kept() {
    let _forks = common::fork_guard();
    let dir = private_dir();
    let payload = format!("student file {}", rand::random::<u64>());
    std::fs::write(dir.path().join("ping"), &payload).unwrap();
    let out = run(&mut pingpong(3, dir.path()));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("ERROR [EEXIST File exists] mkfifo "),
        "{err}"
    );
    assert_eq!(dir_entries(dir.path()), ["ping"]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ping")).unwrap(),
        payload
    );
}

/// A DIR the user cannot write: exit 2 (run as an unprivileged uid; root could write anywhere).
#[test]
fn lab2_unwritable_dir_is_refused_for_a_student() {
    let _forks = common::fork_guard();
    let bins = world_readable_bins(&["pingpong", "pingpong-secondary"]);
    let Some(mut cmd) = as_nobody(&bins.path().join("pingpong")) else {
        return;
    };
    let root_only = private_dir();
    std::fs::set_permissions(
        root_only.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = run(cmd
        .args(["--exchanges", "2", "--dir"])
        .arg(root_only.path()));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("EACCES"), "{err}");
    assert!(dir_entries(root_only.path()).is_empty());
}

/// As a student (unprivileged uid), the reference passes its own contract.
#[test]
fn lab2_runs_as_unprivileged_user() {
    let _forks = common::fork_guard();
    let bins = world_readable_bins(&["pingpong", "pingpong-secondary"]);
    let Some(mut cmd) = as_nobody(&bins.path().join("pingpong")) else {
        return;
    };
    let dir = nobody_dir();
    let n: u64 = rand::rng().random_range(1..=20);
    let out = run(cmd
        .args(["--exchanges", &n.to_string(), "--dir"])
        .arg(dir.path()));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), expected(n));
    assert!(dir_entries(dir.path()).is_empty());
}

/// kill -9 of the secondary mid-run: main sees end of file (read) or EPIPE (write), whichever
/// it was doing, reaps it, removes the FIFOs, exits 1.
#[test]
fn lab2_secondary_killed_main_cleans_up() {
    let _forks = common::fork_guard();
    subreaper();
    let dir = private_dir();
    let mut child = pingpong(10_000_000, dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    read_until(&mut out, "pong 3");
    let sec = ipclab::inspect::children(child.id() as i32);
    assert_eq!(sec.len(), 1, "{sec:?}");
    ipclab::process::signal(Pid::from_raw(sec[0].pid), Signal::SIGKILL).unwrap();
    std::thread::spawn(move || drain(out));
    let res = finish(child);
    let err = text(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{err}");
    assert!(
        (err.contains("end of file on") || err.contains("EPIPE"))
            && err.contains("killed by SIGKILL; reaped"),
        "{err}"
    );
    assert!(dir_entries(dir.path()).is_empty());
    Clean::new("ipclab-none").check();
}

/// kill -9 of main mid-run: the secondary sees end of file, removes the FIFOs it used, exits 1.
#[test]
fn lab2_main_killed_secondary_cleans_up() {
    let _forks = common::fork_guard();
    subreaper();
    let dir = private_dir();
    let mut child = pingpong(10_000_000, dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    read_until(&mut out, "pong 3");
    let sec = ipclab::inspect::children(child.id() as i32)[0].pid;
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::spawn(move || drain(out));
    // The orphaned secondary is now our child (we are its nearest subreaper).
    let st = ipclab::process::wait_for(Pid::from_raw(sec)).unwrap();
    assert_eq!(
        st,
        nix::sys::wait::WaitStatus::Exited(Pid::from_raw(sec), 1)
    );
    let err = drain(child.stderr.take().unwrap());
    assert!(
        (err.contains("[secondary") && err.contains("end of file on")) || err.contains("EPIPE"),
        "{err}"
    );
    assert!(
        dir_entries(dir.path()).is_empty(),
        "{:?}",
        dir_entries(dir.path())
    );
    Clean::new("ipclab-none").check();
}

/// --fault no-wait: while main lives, the secondary is a zombie whose parent is main.
#[test]
fn lab2_fault_no_wait_leaves_a_zombie_while_main_lives() {
    let _forks = common::fork_guard();
    subreaper();
    let dir = private_dir();
    let mut child = pingpong(2, dir.path())
        .args(["--fault", "no-wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = stderr_reader(&mut child);
    let seen = read_until(&mut err, "FAULT no-wait");
    let sec = number_after(&seen, "no-wait: secondary ").unwrap();
    let info = ipclab::inspect::info(sec).unwrap();
    assert!(
        info.is_zombie() && info.ppid == child.id() as i32,
        "{}",
        info.row()
    );
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    // Main is gone: its zombie was re-parented to us; reaping it ends it.
    let st = ipclab::process::wait_for(Pid::from_raw(sec)).unwrap();
    assert_eq!(
        st,
        nix::sys::wait::WaitStatus::Exited(Pid::from_raw(sec), 0)
    );
    Clean::new("ipclab-none").check();
}

/// --fault main-first: main exits first; the secondary is orphaned and re-parented to us.
#[test]
fn lab2_fault_main_first_orphans_the_secondary() {
    let _forks = common::fork_guard();
    subreaper();
    let dir = private_dir();
    let mut child = pingpong(2, dir.path())
        .args(["--fault", "main-first"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = stderr_reader(&mut child);
    let seen = read_until(&mut err, "I am an orphan");
    let me = std::process::id() as i32;
    assert!(seen.contains(&format!("my parent is now {me} ")), "{seen}");
    let sec = number_after(&seen, "[secondary ").unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(ipclab::inspect::info(sec).unwrap().ppid, me);
    drop(child.stdin.take());
    let st = ipclab::process::wait_for(Pid::from_raw(sec)).unwrap();
    assert_eq!(
        st,
        nix::sys::wait::WaitStatus::Exited(Pid::from_raw(sec), 0)
    );
    assert!(dir_entries(dir.path()).is_empty());
    let _ = err.lines().count();
    Clean::new("ipclab-none").check();
}

/// The secondary's binary missing: exec fails, reported as such; FIFOs removed, no zombie.
#[test]
fn lab2_exec_failure_is_reported_and_cleaned_up() {
    let _forks = common::fork_guard();
    let bins = world_readable_bins(&["pingpong"]);
    let dir = private_dir();
    let out = run(Command::new(bins.path().join("pingpong"))
        .args(["--exchanges", "2", "--dir"])
        .arg(dir.path()));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("ENOENT") && err.contains("pingpong-secondary"),
        "{err}"
    );
    assert!(dir_entries(dir.path()).is_empty());
    Clean::new("ipclab-none").check();
}
