//! Lab 1: shm-main / shm-secondary exchange K messages through a segment and leave none behind.
//! This test binary makes itself a child subreaper: the secondary of a killed main comes back to it.

mod common;
use common::*;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use rand::RngExt;
use std::process::{Command, Stdio};

fn shm_main(k: impl ToString, prefix: &str) -> Command {
    let mut c = Command::new(bin("shm-main"));
    c.arg("--messages")
        .arg(k.to_string())
        .arg("--name-prefix")
        .arg(prefix);
    c
}

/// K random messages, each answered in uppercase and verified by main; the segment is unlinked.
#[test]
fn lab1_messages_are_answered_and_segment_unlinked() {
    let _forks = common::fork_guard();
    let prefix = test_prefix();
    let k: u64 = rand::rng().random_range(1..=40);
    let out = run(&mut shm_main(k, &prefix));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len() as u64, k);
    for (i, l) in lines.iter().enumerate() {
        assert!(
            l.starts_with(&format!("message {}: ", i + 1)) && l.ends_with("reply verified"),
            "{l}"
        );
    }
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("answered {k} messages; exiting first")),
        "{err}"
    );
    assert!(err.find("exiting first").unwrap() < err.find("reaped").unwrap());
    assert!(err.contains(&format!("/dev/shm/{prefix}-")));
    Clean::new(&prefix).check();
}

/// --no-sync: the secondary reports how many of its K copies were torn (any count, even 0).
#[test]
fn lab1_no_sync_reports_torn_reads() {
    let _forks = common::fork_guard();
    let prefix = test_prefix();
    let out = run(shm_main(500, &prefix).arg("--no-sync"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let torn = number_after(&stdout, "torn reads: ").expect("a count");
    assert!(stdout.contains(" of 500") && torn <= 500, "{stdout}");
    Clean::new(&prefix).check();
}

/// Bad K or prefix: one line, exit 2, no segment created.
#[test]
fn lab1_bad_input_is_one_line_exit_2() {
    let _forks = common::fork_guard();
    let prefix = test_prefix();
    for (k, p, what) in [
        ("0", prefix.as_str(), "not in 1..="),
        ("x", prefix.as_str(), "invalid digit"),
        ("-1", prefix.as_str(), "--messages"),
        ("5", "a/b", "--name-prefix"),
        ("5", "", "--name-prefix"),
    ] {
        let out = run(&mut shm_main(k, p));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(what), "{what}: {err}");
    }
    Clean::new(&prefix).check();
}

/// kill -9 of the secondary: main notices, reaps it, unlinks the segment, exits 1.
#[test]
fn lab1_secondary_killed_main_cleans_up() {
    let _forks = common::fork_guard();
    ipclab::process::set_child_subreaper().unwrap();
    let prefix = test_prefix();
    let mut child = shm_main(1_000_000, &prefix)
        .arg("--quiet")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = stderr_reader(&mut child);
    let seen = read_until(&mut err, "mapped /dev/shm");
    let sec = number_after(&seen, "[secondary ").unwrap();
    ipclab::process::signal(Pid::from_raw(sec), Signal::SIGKILL).unwrap();
    let rest = drain(err);
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(1), "{rest}");
    assert!(
        rest.contains("died without answering") && rest.contains("killed by SIGKILL; reaped"),
        "{rest}"
    );
    Clean::new(&prefix).check();
}

/// kill -9 of main: the orphaned secondary notices, unlinks the segment main left, exits 1.
#[test]
fn lab1_main_killed_secondary_unlinks_segment() {
    let _forks = common::fork_guard();
    ipclab::process::set_child_subreaper().unwrap();
    let prefix = test_prefix();
    let mut child = shm_main(1_000_000, &prefix)
        .arg("--quiet")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = stderr_reader(&mut child);
    let seen = read_until(&mut err, "mapped /dev/shm");
    let sec = number_after(&seen, "[secondary ").unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let st = ipclab::process::wait_for(Pid::from_raw(sec)).unwrap();
    assert_eq!(
        st,
        nix::sys::wait::WaitStatus::Exited(Pid::from_raw(sec), 1)
    );
    let rest = drain(err);
    assert!(
        rest.contains("died after") && rest.contains("left by main"),
        "{rest}"
    );
    Clean::new(&prefix).check();
}

/// As a student (unprivileged uid): the segment is created 0600 by that uid and removed.
#[test]
fn lab1_runs_as_unprivileged_user() {
    let _forks = common::fork_guard();
    let bins = world_readable_bins(&["shm-main", "shm-secondary"]);
    let Some(mut cmd) = as_nobody(&bins.path().join("shm-main")) else {
        return;
    };
    let prefix = test_prefix();
    let out = run(cmd.args(["--messages", "5", "--name-prefix", &prefix]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 5);
    Clean::new(&prefix).check();
}
