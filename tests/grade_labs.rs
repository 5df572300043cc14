//! The grader on labs 1, 3, 4, 5, 6 and 8: references pass, each fixture fails exactly its fault's
//! checks (skipped ones aside), and graded runs leave no process, cgroup or shm object behind.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;

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
    let n: u32 = lab.trim_start_matches("lab").parse().unwrap();
    let p = common::fixture(n, file);
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

/// Grades the reference (`runs` runs, must pass), then each fixture variant: every run must fail
/// exactly `want` (checks skipped for a failed precondition aside), and the exit status follow.
fn judge_table(lab: &str, file: &str, rows: &[(&str, &[&str])], extra: &[&str]) {
    let (code, v) = grade(lab, &[&["--runs", "2", "--seed", "21"], extra].concat());
    assert_eq!(code, 0, "reference: {}", v["checks"]);
    judge_variants(
        lab,
        &|variant| fixture(&format!("lab{lab}"), file, variant),
        rows,
        extra,
    );
}

/// Each variant's command (`cmd_for`) graded: every run fails exactly its row's checks.
fn judge_variants(
    lab: &str,
    cmd_for: &dyn Fn(&str) -> String,
    rows: &[(&str, &[&str])],
    extra: &[&str],
) {
    for (variant, want) in rows {
        let cmd = cmd_for(variant);
        let (code, v) = grade(
            lab,
            &[
                &["--impl", cmd.as_str(), "--runs", "2", "--seed", "22"],
                extra,
            ]
            .concat(),
        );
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
            assert_eq!(failed, want, "lab {lab} {variant}: {}", v["checks"]);
        }
        assert_eq!(
            code,
            if want.is_empty() { 0 } else { 1 },
            "lab {lab} {variant}"
        );
    }
    clean_after();
}

/// Lab 1: leak, zombie and wrong-name faults fail exactly their check (the grader removes the
/// leaked segment after judging).
#[test]
fn grade_lab1_fixtures_are_judged_exactly() {
    let _forks = common::fork_guard();
    judge_table(
        "1",
        "shm.py",
        &[
            ("correct", &[]),
            ("leak", &["no-leaked-shm"]),
            ("no-wait-dead", &["no-zombies"]),
            ("wrong-prefix", &["shared-memory"]),
        ],
        &[],
    );
}

/// Lab 5: a reaper that reaps one child per SIGCHLD hangs with zombies; one that never reaps
/// leaves zombies; a wrong status fails the protocol.
#[test]
fn grade_lab5_fixtures_are_judged_exactly() {
    let _forks = common::fork_guard();
    judge_table(
        "5",
        "reaper.py",
        &[
            ("correct", &[]),
            ("no-wait", &["no-zombies"]),
            ("wrong-status", &["protocol"]),
            ("one-per-signal", &["no-zombies", "timeout"]),
        ],
        &["--timeout", "3"],
    );
}

/// Lab 6: a single fork, no setsid, a kept stdout pipe, an unlocked pidfile, a stop that does not
/// wait each fail exactly their check; a self-pipe of the daemon's own and a refused daemon that
/// outlives its launcher pass; every daemon is stopped or killed, and reaped.
#[test]
fn grade_lab6_fixtures_are_judged_exactly() {
    let _forks = common::fork_guard();
    judge_table(
        "6",
        "daemon.py",
        &[
            ("correct", &[]),
            ("single-fork", &["daemonized"]),
            ("no-lock", &["pidfile"]),
            ("stop-early", &["stop"]),
            ("self-pipe", &[]),
            ("no-setsid", &["daemonized"]),
            ("keep-stdout", &["daemonized"]),
            ("refuse-late", &[]),
        ],
        &[],
    );
}

/// Lab 3: faults injected while the watchdog runs. A watchdog that polls with kill(pid, 0) never
/// restarts (a zombie still "exists") and leaves zombies; one that never waits leaves zombies;
/// one without a heartbeat deadline never restarts a frozen server.
#[test]
fn grade_lab3_fixtures_are_judged_exactly() {
    let _forks = common::fork_guard();
    judge_table(
        "3",
        "watchdog.py",
        &[
            ("correct", &[]),
            ("polls", &["restart-after-crash", "no-zombies"]),
            ("zombies", &["no-zombies"]),
            ("no-hang-check", &["restart-after-hang"]),
            ("log-at-beat", &[]),
        ],
        &[],
    );
}

/// Lab 3 in C: a correct student watchdog (self-pipe, waitpid loop, pipe heartbeats) passes.
#[test]
fn grade_lab3_c_watchdog_passes() {
    let _forks = common::fork_guard();
    let dir = world_dir("ipclab-cfix-");
    let exe = dir.path().join("watchdog");
    let src = common::fixture(3, "watchdog.c");
    cc(&src, &exe, &[]);
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

/// Lab 4 under the reference watchdog: each run must fail every check of `must` and nothing
/// outside `must` and `may` (skipped ones aside). A dispatcher that hangs when all workers are
/// busy may still be draining its backlog of given-up clients in the later phases: `may`.
fn judge_lab4(cmd: &str, must: &[&str], may: &[&str]) {
    let (code, v) = grade("4", &["--impl", cmd, "--runs", "1", "--seed", "44"]);
    let skipped: BTreeSet<String> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["skipped"] == true)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    for failed in failing_each_run(&v) {
        let failed: BTreeSet<&str> = failed.difference(&skipped).map(|s| s.as_str()).collect();
        for m in must {
            assert!(failed.contains(m), "{cmd}: {m} passed: {}", v["checks"]);
        }
        for f in &failed {
            assert!(
                must.contains(f) || may.contains(f),
                "{cmd}: {f} failed: {}",
                v["checks"]
            );
        }
    }
    assert_eq!(code, if must.is_empty() { 0 } else { 1 }, "{cmd}");
}

/// Lab 4: the reference passes twice; each Python fault fails its checks.
#[test]
fn grade_lab4_fixtures_are_judged_exactly() {
    let _forks = common::fork_guard();
    let (code, v) = grade("4", &["--runs", "2", "--seed", "41"]);
    assert_eq!(code, 0, "reference: {}", v["checks"]);
    let rows: &[(&str, &[&str], &[&str])] = &[
        ("correct", &[], &[]),
        (
            "busy-hangs",
            &["all-clients-served", "busy-reply"],
            &["malformed-request", "worker-crash"],
        ),
        ("crash-on-malformed", &["malformed-request"], &[]),
        ("keep-sockets", &["worker-crash", "no-leaked-files"], &[]),
        ("zombies", &["no-zombies"], &[]),
        // SIGTERM must reach a threaded worker's main thread under ptrace as it does untraced.
        ("threaded", &[], &[]),
        ("keep-open", &["all-clients-served"], &[]),
    ];
    for (variant, must, may) in rows {
        judge_lab4(&fixture("lab4", "servers.py", variant), must, may);
    }
    clean_after();
}

/// Lab 4 in C: a correct dispatcher and worker pass; built with -DHANG_WHEN_BUSY, the dispatcher
/// that waits for a free worker fails busy-reply.
#[test]
fn grade_lab4_c_servers_are_judged() {
    let _forks = common::fork_guard();
    let dir = world_dir("ipclab-cfix-");
    let src = common::fixture(4, "servers.c");
    for (name, flags) in [
        ("servers", &[][..]),
        ("servers-hang", &["-DHANG_WHEN_BUSY"][..]),
    ] {
        cc(&src, &dir.path().join(name), flags);
    }
    let exe = |n: &str| dir.path().join(n).display().to_string();
    judge_lab4(&exe("servers"), &[], &[]);
    judge_lab4(
        &exe("servers-hang"),
        &["all-clients-served", "busy-reply"],
        &["malformed-request", "worker-crash"],
    );
    clean_after();
}

/// Lab 8: the grader plays the other side of each role; the reference passes twice, and each
/// Python fault fails its check (a server that never answers a line cannot serve the client
/// after a reset either; one bound to TCP for UDP meets no port in use).
#[test]
fn grade_lab8_fixtures_are_judged_exactly() {
    let _forks = common::fork_guard();
    judge_table(
        "8",
        "sockets.py",
        &lab8_rows("traceback"),
        &["--timeout", "3"],
    );
}

/// Lab 8's faults, the same in Python and in C but for the one that writes several lines on
/// a port in use (`many_lines`: a traceback, or a perror and a usage line).
fn lab8_rows(many_lines: &'static str) -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        ("correct", &[]),
        // Its port-in-use check is skipped: it never bound the free port as UDP.
        ("udp-on-tcp", &["udp-datagram-socket"]),
        ("udp-no-answer", &["udp-answers"]),
        ("udp-no-source", &["udp-source-shown"]),
        (many_lines, &["udp-port-in-use", "tcp-port-in-use"]),
        ("udp-client-no-wait", &["udp-client"]),
        (
            "tcp-no-ok",
            &["tcp-answers", "tcp-survives-vanished-client"],
        ),
        ("tcp-never-closes", &["tcp-sees-client-close"]),
        ("tcp-dies-on-reset", &["tcp-survives-vanished-client"]),
        ("tcp-client-waits", &["tcp-client-closes-first"]),
        ("forks-helper", &["no-leftover-processes"]),
        ("ignores-term", &["timeout"]),
        // Stopping at once with one line and status 1 passes nothing.
        (
            "always-refuses",
            &[
                "udp-datagram-socket",
                "udp-client",
                "tcp-stream-socket",
                "tcp-client-closes-first",
            ],
        ),
    ]
}

/// Lab 8 in C: the faults C makes easy (a perror and a usage line, a reset taken for a fatal
/// error, a descriptor never closed...), each failing exactly its checks.
#[test]
fn grade_lab8_c_fixtures_are_judged_exactly() {
    let _forks = common::fork_guard();
    let dir = world_dir("ipclab-cfix-");
    let exe = dir.path().join("sockets");
    cc(&common::fixture(8, "sockets.c"), &exe, &[]);
    let exe = exe.display().to_string();
    judge_variants(
        "8",
        &|variant| format!("{exe} {variant}"),
        &lab8_rows("two-lines"),
        &["--timeout", "3"],
    );
}

/// Lab 8 graded by a normal user: no namespace of the run's own, so the machine's loopback on
/// free ports; the reference still passes and a fault is still found.
#[test]
fn grade_lab8_as_a_normal_user() {
    let _forks = common::fork_guard();
    let Some(as_nobody) = grade_as_nobody("8", "ipclab-lab8-nobody-") else {
        return;
    };
    let v = as_nobody(&[]);
    assert_eq!(v["passed"], true, "{}", v["checks"]);
    let cmd = fixture("lab8", "sockets.py", "tcp-never-closes");
    let v = as_nobody(&["--impl", &cmd]);
    assert_eq!(
        failing_each_run(&v)[0],
        ["tcp-sees-client-close".to_string()].into(),
        "{}",
        v["checks"]
    );
}

/// Lab 9's faults, one check each (the daemon left in the foreground fails daemonized and
/// timeout, and the checks that need a daemon are skipped); the same in Python and in C but for
/// the client that writes several lines when refused (`many_lines`).
fn lab9_rows(many_lines: &'static str) -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        ("correct", &[]),
        ("no-setsid", &["daemonized"]),
        ("no-daemon", &["daemonized", "timeout"]),
        ("pid-of-parent", &["pidfile"]),
        ("stdout-only", &["answers-missing-user"]),
        ("cut-at-64k", &["long-answer"]),
        ("iterative", &["concurrent-clients"]),
        ("no-address", &["logs-queries"]),
        ("shell", &["hostile-queries"]),
        ("keeps-pidfile", &["sigterm"]),
        ("leaves-child", &["no-leftover-processes"]),
        // Its whole-answer check is skipped: no query line reached the server.
        ("client-no-newline", &["client-query"]),
        ("client-one-recv", &["client-whole-answer"]),
        (many_lines, &["client-refused"]),
    ]
}

#[test]
fn grade_lab9_fixtures_are_judged_exactly() {
    let _forks = common::fork_guard();
    judge_table(
        "9",
        "finger.py",
        &lab9_rows("client-traceback"),
        &["--timeout", "3"],
    );
}

#[test]
fn grade_lab9_c_fixtures_are_judged_exactly() {
    let _forks = common::fork_guard();
    let dir = world_dir("ipclab-cfix-");
    let exe = dir.path().join("finger");
    cc(&common::fixture(9, "finger.c"), &exe, &["-pthread"]);
    let exe = exe.display().to_string();
    // The daemon left in the foreground costs its 5 s start bound: once, in the Python table.
    let rows: Vec<_> = lab9_rows("client-two-lines")
        .into_iter()
        .filter(|(v, _)| *v != "no-daemon")
        .collect();
    judge_variants(
        "9",
        &|variant| format!("{exe} {variant}"),
        &rows,
        &["--timeout", "3"],
    );
}

/// Lab 9 graded by a normal user: the machine's loopback, no users of the grader's own (the
/// box has no passwd of its own), so the long answer is not judged; the reference passes the
/// rest and a shell-running daemon is still caught.
#[test]
fn grade_lab9_as_a_normal_user() {
    let _forks = common::fork_guard();
    let Some(as_nobody) = grade_as_nobody("9", "ipclab-lab9-nobody-") else {
        return;
    };
    let v = as_nobody(&[]);
    // Not "passed": a skipped check is not a pass, and the report says why it was skipped.
    let failed: Vec<&Value> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false && c["skipped"] == false)
        .collect();
    assert!(failed.is_empty(), "{}", v["checks"]);
    let skipped: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["skipped"] == true)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["long-answer"], "{}", v["checks"]);
    let cmd = fixture("lab9", "finger.py", "shell");
    let v = as_nobody(&["--impl", &cmd]);
    assert_eq!(
        failing_each_run(&v)[0],
        ["hostile-queries".to_string(), "long-answer".to_string()].into(),
        "{}",
        v["checks"]
    );
}

/// `ipclab grade LAB --format json ARGS` as uid 65534, from a world-writable cwd of its own
/// (its transcripts go to its cwd's target/grade); None when the test is not root.
fn grade_as_nobody(lab: &str, prefix: &str) -> Option<impl Fn(&[&str]) -> Value> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to become a normal user");
        return None;
    }
    let cwd = world_dir(prefix);
    std::fs::set_permissions(
        cwd.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let lab = lab.to_string();
    Some(move |args: &[&str]| {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin("ipclab"))
            .args(["grade", &lab, "--format", "json"])
            .args(args)
            .env("HOME", cwd.path())
            .current_dir(cwd.path());
        let out = run(&mut cmd);
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)))
    })
}
