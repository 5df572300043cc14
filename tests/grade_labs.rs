//! The grader on labs 1 and 5: references pass, each fixture fails exactly its fault's checks,
//! and graded runs leave no process, cgroup or shared-memory object behind.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn grade(lab: &str, args: &[&str]) -> (i32, Value) {
    let mut cmd = Command::new(bin("ipclab"));
    cmd.args(["grade", lab, "--format", "json"]).args(args);
    let out = run(&mut cmd);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)));
    (out.status.code().unwrap_or(-1), v)
}

fn failing_each_run(v: &Value) -> Vec<BTreeSet<String>> {
    v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["checks"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["passed"] == false)
                .map(|c| c["name"].as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

fn fixture(lab: &str, file: &str, variant: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(lab)
        .join(file);
    format!("/usr/bin/python3 {} {variant}", p.display())
}

fn clean_after() {
    Clean::new("ipclabg").check();
    let cgroups = std::fs::read_dir("/sys/fs/cgroup/pids")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("ipclab-grade-"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(cgroups, 0, "cgroups left behind");
}

/// Lab 1: the reference passes; leak, zombie and wrong-name faults fail exactly their check.
#[test]
fn grade_lab1_fixtures_are_judged_exactly() {
    let (code, v) = grade("1", &["--runs", "3", "--seed", "21"]);
    assert_eq!(code, 0, "{}", v["checks"]);
    for (variant, want) in [
        ("correct", vec![]),
        ("leak", vec!["no-leaked-shm"]),
        ("no-wait-dead", vec!["no-zombies"]),
        ("wrong-prefix", vec!["shared-memory"]),
    ] {
        let cmd = fixture("lab1", "shm.py", variant);
        let (code, v) = grade("1", &["--impl", &cmd, "--runs", "2", "--seed", "22"]);
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        for failed in failing_each_run(&v) {
            assert_eq!(failed, want, "{variant}: {}", v["checks"]);
        }
        assert_eq!(code, if want.is_empty() { 0 } else { 1 });
    }
    // The leaked segment was removed by the grader after judging.
    clean_after();
}

/// Lab 5: the reference passes; a reaper that reaps one child per SIGCHLD hangs with zombies;
/// one that never reaps leaves zombies; a wrong status fails the protocol.
#[test]
fn grade_lab5_fixtures_are_judged_exactly() {
    let (code, v) = grade("5", &["--runs", "3", "--seed", "31"]);
    assert_eq!(code, 0, "{}", v["checks"]);
    for (variant, want, timeout) in [
        ("correct", vec![], "10"),
        ("no-wait", vec!["no-zombies"], "10"),
        ("wrong-status", vec!["protocol"], "10"),
        ("one-per-signal", vec!["no-zombies", "timeout"], "2"),
    ] {
        let cmd = fixture("lab5", "reaper.py", variant);
        let (code, v) = grade(
            "5",
            &[
                "--impl",
                &cmd,
                "--runs",
                "2",
                "--seed",
                "32",
                "--timeout",
                timeout,
            ],
        );
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        for failed in failing_each_run(&v) {
            let failed: BTreeSet<String> = failed
                .into_iter()
                .filter(|n| {
                    !v["checks"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|c| c["name"] == n.as_str() && c["skipped"] == true)
                })
                .collect();
            assert_eq!(failed, want, "{variant}: {}", v["checks"]);
        }
        assert_eq!(code, if want.is_empty() { 0 } else { 1 });
    }
    clean_after();
}

/// Lab 6: the reference passes; a single fork, an unlocked pidfile, a stop that does not wait
/// each fail exactly their check; every daemon is stopped or killed, and reaped.
#[test]
fn grade_lab6_fixtures_are_judged_exactly() {
    let (code, v) = grade("6", &["--runs", "3", "--seed", "41"]);
    assert_eq!(code, 0, "{}", v["checks"]);
    for (variant, want) in [
        ("correct", vec![]),
        ("single-fork", vec!["daemonized"]),
        ("no-lock", vec!["pidfile"]),
        ("stop-early", vec!["stop"]),
    ] {
        let cmd = fixture("lab6", "daemon.py", variant);
        let (code, v) = grade("6", &["--impl", &cmd, "--runs", "2", "--seed", "42"]);
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        for failed in failing_each_run(&v) {
            assert_eq!(failed, want, "{variant}: {}", v["checks"]);
        }
        assert_eq!(code, if want.is_empty() { 0 } else { 1 });
    }
    clean_after();
}

/// Lab 3: faults injected while the watchdog runs. The reference passes; a watchdog that polls
/// with kill(pid, 0) never restarts (a zombie still "exists") and leaves zombies; one that never
/// waits leaves zombies; one without a heartbeat deadline never restarts a frozen server.
#[test]
fn grade_lab3_fixtures_are_judged_exactly() {
    let (code, v) = grade("3", &["--runs", "2", "--seed", "51"]);
    assert_eq!(code, 0, "{}", v["checks"]);
    for (variant, want) in [
        ("correct", vec![]),
        ("polls", vec!["restart-after-crash", "no-zombies"]),
        ("zombies", vec!["no-zombies"]),
        ("no-hang-check", vec!["restart-after-hang"]),
    ] {
        let cmd = fixture("lab3", "watchdog.py", variant);
        let (code, v) = grade("3", &["--impl", &cmd, "--seed", "52"]);
        let skipped: BTreeSet<String> = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["skipped"] == true)
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        for failed in failing_each_run(&v) {
            let failed: BTreeSet<String> = failed.difference(&skipped).cloned().collect();
            assert_eq!(failed, want, "{variant}: {}", v["checks"]);
        }
        assert_eq!(code, if want.is_empty() { 0 } else { 1 });
    }
    clean_after();
}

/// Lab 3 in C: a correct student watchdog (self-pipe, waitpid loop, pipe heartbeats) passes.
#[test]
fn grade_lab3_c_watchdog_passes() {
    let dir = tempfile::Builder::new()
        .prefix("ipclab-cfix-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let exe = dir.path().join("watchdog");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lab3/watchdog.c");
    let out = run(Command::new("cc").args(["-O2", "-o"]).arg(&exe).arg(&src));
    assert!(out.status.success(), "cc: {}", text(&out.stderr));
    let (code, v) = grade(
        "3",
        &[
            "--impl",
            exe.to_str().unwrap(),
            "--runs",
            "2",
            "--seed",
            "53",
        ],
    );
    assert_eq!(code, 0, "{}", v["checks"]);
    clean_after();
}
