//! Lab 7: every mechanism carries every message intact (--verify: each byte checked by both
//! sides) at each size it allows, larger sizes are skipped with the reason, the JSON is valid,
//! bad input is one line and exit 2, and nothing is left behind. Speed is never asserted.

mod common;
use common::*;
use serde_json::Value;
use std::process::Command;

fn bench(args: &[&str]) -> std::process::Output {
    run(Command::new(bin("ipclab")).arg("bench").args(args))
}

/// POSIX queues named ipclab*: from /dev/mqueue, or, where it is not mounted, from an mqueue
/// filesystem mounted in a private mount namespace (root), so the check still sees them.
fn mqueues() -> Vec<String> {
    let list = |text: String| -> Vec<String> {
        text.lines()
            .filter(|n| n.starts_with("ipclab"))
            .map(str::to_string)
            .collect()
    };
    if let Ok(rd) = std::fs::read_dir("/dev/mqueue") {
        return list(
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned() + "\n")
                .collect(),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount -t mqueue none \"$0\" && ls -1 \"$0\"",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cannot list POSIX queues (no /dev/mqueue, and unshare + mount failed): {}",
        text(&out.stderr)
    );
    list(text(&out.stdout))
}

fn sysv_queues() -> usize {
    std::fs::read_to_string("/proc/sysvipc/msg")
        .map(|s| s.lines().count().saturating_sub(1))
        .unwrap_or(0)
}

#[test]
fn lab7_every_mechanism_carries_every_message() {
    let _forks = common::fork_guard();
    let (mq_before, sysv_before) = (mqueues(), sysv_queues());
    let out = bench(&[
        "--size",
        "1",
        "--size",
        "7",
        "--size",
        "4096",
        "--size",
        "65536",
        "--round-trips",
        "300",
        "--verify",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["rows"].as_array().unwrap();
    let skipped = v["skipped"].as_array().unwrap();
    for m in ipclab::zoo::mech::ALL {
        for size in [1u64, 7, 4096, 65536] {
            let measured = rows
                .iter()
                .find(|r| r["mechanism"] == m.name() && r["size"] == size);
            let skip = skipped
                .iter()
                .find(|r| r["mechanism"] == m.name() && r["size"] == size);
            let (max, _) = m.limit();
            if size as usize <= max {
                let r = measured.unwrap_or_else(|| panic!("{} {size} B missing", m.name()));
                let rtt = &r["rtt_ns"];
                assert!(rtt["min"].as_u64() <= rtt["median"].as_u64());
                assert!(rtt["median"].as_u64() <= rtt["p99"].as_u64());
                assert!(rtt["p99"].as_u64() <= rtt["max"].as_u64());
                assert!(r["throughput_msgs_s"].as_f64().unwrap() > 0.0);
                assert_eq!(r["round_trips"], 300);
                assert!(r["cpu_ns_per_rt"]["main"].is_u64());
            } else {
                let s =
                    skip.unwrap_or_else(|| panic!("{} {size} B neither run nor skipped", m.name()));
                assert!(!s["reason"].as_str().unwrap().is_empty());
            }
        }
    }
    let costs = v["process_costs"].as_array().unwrap();
    assert_eq!(costs.len(), 3);
    assert_eq!(mqueues(), mq_before, "POSIX queues left");
    assert_eq!(sysv_queues(), sysv_before, "System V queues left");
    Clean::new("ipclab-zoo").check();
}

#[test]
fn lab7_text_csv_and_svg() {
    let _forks = common::fork_guard();
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("zoo.svg");
    let out = bench(&[
        "--mechanism",
        "pipe",
        "--mechanism",
        "shm-futex",
        "--size",
        "64",
        "--round-trips",
        "200",
        "--svg",
        svg.to_str().unwrap(),
        "--no-process-costs",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(
        t.lines().any(|l| l.starts_with("pipe ")) && t.contains("shm-futex"),
        "{t}"
    );
    let doc = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(doc.matches("class=\"bar\"").count(), 2, "{doc}");
    let out = bench(&[
        "--mechanism",
        "eventfd",
        "--size",
        "4",
        "--round-trips",
        "50",
        "--format",
        "csv",
        "--no-process-costs",
    ]);
    let csv = text(&out.stdout);
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(
        csv.lines().nth(1).unwrap().starts_with("eventfd,4,50,"),
        "{csv}"
    );
}

#[test]
fn lab7_bad_input_is_one_line_exit_2() {
    let _forks = common::fork_guard();
    let (mq_before, sysv_before) = (mqueues(), sysv_queues());
    for (args, what) in [
        (
            vec!["--mechanism", "carrier-pigeon"],
            "valid are pipe, fifo",
        ),
        (vec!["--size", "0"], "bad --size 0"),
        (vec!["--size", "70000"], "bad --size 70000"),
        (
            vec!["--mechanism", "signal", "--size", "64"],
            "too big for signal",
        ),
        (
            vec!["--mechanism", "posix-mq", "--size", "65536"],
            "too big for posix-mq",
        ),
        (vec!["--round-trips", "0"], "bad --round-trips 0"),
        (
            vec!["--mechanism", "shm-spin", "--pin", "same"],
            "refuses --pin same",
        ),
    ] {
        let out = bench(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(what), "{args:?}: {err}");
    }
    // One CPU allowed: a split pin cannot be honoured.
    let out = run(Command::new("taskset")
        .args(["-c", "0"])
        .arg(bin("ipclab"))
        .args(["bench", "--pin", "split", "--mechanism", "pipe"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--pin split needs 2 CPUs"), "{err}");
    assert_eq!(mqueues(), mq_before);
    assert_eq!(sysv_queues(), sysv_before);
    Clean::new("ipclab-zoo").check();
}
