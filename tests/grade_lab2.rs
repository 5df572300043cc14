//! The grader on lab 2: every fixture judged right (the fault table of the design notes), with
//! and without --race, every report format valid, and nothing left on the machine.
//! `ipclab grade` always runs as a separate process: it is a subreaper and reaps what it adopts.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    common::lab_dir(2).join("fixtures").join(name)
}

fn py(variant: &str) -> String {
    format!(
        "/usr/bin/python3 {} {variant}",
        fixture("pingpong.py").display()
    )
}

/// Runs `ipclab grade 2 ...` and returns (exit status, JSON report).
fn grade(args: &[&str]) -> (i32, Value) {
    let mut cmd = Command::new(bin("ipclab"));
    cmd.args(["grade", "2", "--format", "json"]).args(args);
    let out = run(&mut cmd);
    let code = out.status.code().unwrap_or(-1);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)));
    (code, v)
}

fn failing(v: &Value) -> BTreeSet<String> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false && c["skipped"] == false)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn skipped(v: &Value) -> BTreeSet<String> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["skipped"] == true)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Nothing of a grading run may remain: no process of the dropped uid, no cgroup of ours.
#[allow(dead_code)]
fn machine_clean() {
    Clean::new("ipclab-none").check();
    let stray: Vec<String> = ipclab::inspect::all()
        .into_iter()
        .filter(|p| {
            std::fs::metadata(format!("/proc/{}", p.pid))
                .is_ok_and(|m| (61000..=61999).contains(&std::os::unix::fs::MetadataExt::uid(&m)))
        })
        .filter(|p| {
            p.comm.starts_with("python") || p.comm.starts_with("pingpong") || p.comm == "lab2c"
        })
        .map(|p| p.row())
        .collect();
    assert!(stray.is_empty(), "left running: {stray:?}");
    let cgroups: Vec<String> = std::fs::read_dir("/sys/fs/cgroup/pids")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("ipclab-grade-"))
                .collect()
        })
        .unwrap_or_default();
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
}

/// The fault table: each fixture fails exactly its row's checks, K of K, with and without --race.
#[test]
fn grade_lab2_fault_table_is_judged_exactly() {
    let _forks = common::fork_guard();
    let rows: &[(&str, &[&str])] = &[
        ("fork", &[]),
        ("exec", &[]),
        ("subprocess", &[]),
        ("no-wait-dead", &["no-zombies"]),
        ("no-wait-running", &["shutdown-order"]),
        ("late-wait", &["no-zombies"]),
        ("leak-fifos", &["no-leaked-files"]),
        ("helper", &["no-leftover-processes"]),
        ("anon-pipes", &["named-pipes"]),
        ("wrong-line", &["protocol"]),
    ];
    for race in [false, true] {
        for (variant, want) in rows {
            let cmd = py(variant);
            let mut args = vec!["--impl", &cmd, "--runs", "3", "--seed", "11"];
            if race {
                args.push("--race");
            }
            let (code, v) = grade(&args);
            for run in v["runs"].as_array().unwrap() {
                let failed: BTreeSet<String> = run["checks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|c| c["passed"] == false)
                    .map(|c| c["name"].as_str().unwrap().to_string())
                    .collect();
                assert_eq!(
                    failed,
                    set(want),
                    "{variant} race={race} seed {}: {run}",
                    run["seed"]
                );
            }
            assert_eq!(code, if want.is_empty() { 0 } else { 1 }, "{variant}");
            assert_eq!(v["passed"], want.is_empty());
        }
    }
    machine_clean();
}

/// A secondary that never answers: timeout fails with the stuck point, dependent checks skipped.
#[test]
fn grade_lab2_timeout_skips_what_depends_on_it() {
    let _forks = common::fork_guard();
    let cmd = py("never-answers");
    let (code, v) = grade(&["--impl", &cmd, "--timeout", "2", "--seed", "5"]);
    assert_eq!(code, 1);
    assert_eq!(failing(&v), set(&["timeout"]));
    assert_eq!(
        skipped(&v),
        set(&[
            "exit-status",
            "protocol",
            "shutdown-order",
            "no-leftover-processes",
            "no-leaked-files"
        ])
    );
    let t = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "timeout")
        .unwrap();
    assert!(
        t["detail"]
            .as_str()
            .unwrap()
            .contains("\"pong 1\" never came: stuck after \"ping 1\""),
        "{t}"
    );
    machine_clean();
}

/// A run's own seed, pasted back as --seed, replays that run: the same parameters; and a
/// failing run's transcript names the command that does it.
#[test]
fn grade_lab2_seed_round_trip() {
    let _forks = common::fork_guard();
    let (_, v) = grade(&["--runs", "3", "--seed", "424242"]);
    for run in v["runs"].as_array().unwrap() {
        let s = run["seed"].as_u64().unwrap().to_string();
        let (_, again) = grade(&["--seed", &s]);
        assert_eq!(again["runs"][0]["seed"], run["seed"]);
        assert_eq!(again["runs"][0]["params"], run["params"], "seed {s}");
    }
    let cmd = py("wrong-line");
    let (_, v) = grade(&["--impl", &cmd, "--runs", "2", "--seed", "7"]);
    let run = &v["runs"][1];
    let path = run["transcript"].as_str().expect("a transcript");
    let t = std::fs::read_to_string(path).unwrap();
    let replay = format!("--seed {}", run["seed"]);
    assert!(
        t.contains("replay this run: ipclab grade 2 --impl") && t.contains(&replay),
        "{t}"
    );
    assert!(!t.contains("Created {") && !t.contains("Some("), "{t}");
    let _ = std::fs::remove_file(path);
}

/// The FIFO open-order deadlock, in Python and in C: the timeout says where each process is
/// blocked and names the deadlock in the student's terms; named-pipes does not claim the FIFOs
/// were never opened.
#[test]
fn grade_lab2_open_order_deadlock_is_diagnosed() {
    let _forks = common::fork_guard();
    let dir = world_dir("ipclab-deadlock-");
    let exe = dir.path().join("open-order");
    cc(&fixture("pingpong.c"), &exe, &["-DOPEN_ORDER"]);
    for cmd in [py("open-order"), exe.display().to_string()] {
        let (code, v) = grade(&["--impl", &cmd, "--timeout", "3", "--seed", "5"]);
        assert_eq!(code, 1, "{cmd}");
        let detail = |name: &str| {
            v["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name)
                .unwrap()["detail"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let t = detail("timeout");
        for part in [
            "main is blocked opening DIR/ping for writing",
            "the secondary is blocked opening DIR/pong for writing",
            "open the FIFOs in the same order on both sides",
        ] {
            assert!(t.contains(part), "{cmd}: {part:?} not in {t}");
        }
        let np = detail("named-pipes");
        assert!(!np.contains("no process opened"), "{cmd}: {np}");
    }
    machine_clean();
}

/// C fixtures: the correct one passes K of K with and without --race; the racy one passes
/// without and fails in at least one of K seeded runs with --race.
#[test]
fn grade_lab2_c_fixtures_and_race_injection() {
    let _forks = common::fork_guard();
    let dir = world_dir("ipclab-cfix-");
    let ok = dir.path().join("lab2c");
    let racy = dir.path().join("racy");
    cc(&fixture("pingpong.c"), &ok, &[]);
    cc(&fixture("pingpong.c"), &racy, &["-DRACY"]);
    let okp = ok.display().to_string();
    let racyp = racy.display().to_string();
    for race in [false, true] {
        let mut args = vec!["--impl", &okp, "--runs", "10", "--seed", "3"];
        if race {
            args.push("--race");
        }
        let (code, v) = grade(&args);
        assert_eq!(code, 0, "correct C fixture, race={race}: {}", v["checks"]);
    }
    let (code, _) = grade(&["--impl", &racyp, "--runs", "10", "--seed", "3"]);
    assert_eq!(code, 0, "the racy fixture passes without --race");
    let (code, v) = grade(&["--impl", &racyp, "--runs", "10", "--seed", "3", "--race"]);
    let failed_runs = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["checks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["passed"] == false)
        })
        .count();
    assert_eq!(code, 1);
    assert!(
        failed_runs >= 1,
        "racy fixture passed all 10 runs under --race"
    );
    machine_clean();
}

/// The same seed gives the same parameters; different runs get fresh ones.
#[test]
fn grade_lab2_seed_fixes_parameters() {
    let _forks = common::fork_guard();
    let (_, a) = grade(&["--seed", "77", "--runs", "3"]);
    let (_, b) = grade(&["--seed", "77", "--runs", "3"]);
    let params = |v: &Value| {
        v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["seed"].as_u64().unwrap(),
                    r["params"]["N"].as_u64().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(params(&a), params(&b));
    assert_eq!(a["seed"], 77);
    let ns: BTreeSet<u64> = params(&a).iter().map(|p| p.0).collect();
    assert_eq!(ns.len(), 3, "each run has its own seed");
}

/// One run writes several formats; each validates: JSON parses with the documented shape,
/// JUnit is well-formed XML with the right counts, TAP's plan matches its lines, Gradescope's
/// scores add up.
#[test]
fn grade_lab2_report_formats_validate() {
    let _forks = common::fork_guard();
    let d = tempfile::tempdir().unwrap();
    let f = |n: &str| d.path().join(n).display().to_string();
    let cmd = py("leak-fifos");
    let out = run(Command::new(bin("ipclab")).args([
        "grade",
        "2",
        "--impl",
        &cmd,
        "--seed",
        "9",
        "--format",
        "json",
        "--output",
        &f("r.json"),
        "--format",
        "junit",
        "--output",
        &f("r.xml"),
        "--format",
        "tap",
        "--output",
        &f("r.tap"),
        "--format",
        "gradescope",
        "--output",
        &f("results.json"),
        "--format",
        "text",
        "--output",
        &f("r.txt"),
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let j: Value = serde_json::from_str(&std::fs::read_to_string(f("r.json")).unwrap()).unwrap();
    for key in [
        "contract_version",
        "lab",
        "seed",
        "passed",
        "score",
        "max_score",
        "runs",
        "checks",
    ] {
        assert!(j.get(key).is_some(), "{key} missing");
    }
    assert_eq!(j["contract_version"], 1);
    assert_eq!(j["lab"], 2);
    let checks = j["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 8);
    for c in checks {
        for key in ["name", "passed", "skipped", "detail", "points"] {
            assert!(c.get(key).is_some(), "check field {key} missing");
        }
    }
    let xml = std::fs::read_to_string(f("r.xml")).unwrap();
    let report = quick_junit::Report::deserialize_from_str(&xml).expect("well-formed JUnit");
    assert_eq!(report.tests, 8);
    assert_eq!(report.failures, 1);
    let tap = std::fs::read_to_string(f("r.tap")).unwrap();
    assert!(tap.starts_with("TAP version 14\n1..8\n"), "{tap}");
    let results: Vec<&str> = tap
        .lines()
        .filter(|l| l.starts_with("ok ") || l.starts_with("not ok "))
        .collect();
    assert_eq!(results.len(), 8);
    assert_eq!(tap.lines().filter(|l| l.starts_with("not ok ")).count(), 1);
    let gs: Value =
        serde_json::from_str(&std::fs::read_to_string(f("results.json")).unwrap()).unwrap();
    let tests = gs["tests"].as_array().unwrap();
    let sum: u64 = tests.iter().map(|t| t["score"].as_u64().unwrap()).sum();
    assert_eq!(gs["score"].as_u64().unwrap(), sum);
    assert_eq!(gs["score"], j["score"]);
    let txt = std::fs::read_to_string(f("r.txt")).unwrap();
    assert!(
        txt.contains("== lab2: no-leaked-files == FAIL")
            && txt.contains("DIR still holds ping, pong"),
        "{txt}"
    );
    assert!(txt.contains(&format!("Score: {}/{}", j["score"], j["max_score"])));
}

/// Usage errors exit 2 in one line; an implementation the grader cannot run exits 3, saying why.
#[test]
fn grade_lab2_bad_usage_and_unrunnable_implementations() {
    let _forks = common::fork_guard();
    for args in [
        vec!["grade", "all", "--impl", "/bin/true"],
        vec!["grade", "99"],
        vec!["grade", "2", "--impl", "/nonexistent/prog"],
        vec!["grade", "2", "--runs", "0"],
        vec!["grade", "2", "--timeout", "-1"],
        vec![
            "grade",
            "2",
            "--format",
            "json",
            "--output",
            "/tmp/x.json",
            "--output",
            "/tmp/y.json",
        ],
    ] {
        let out = run(Command::new(bin("ipclab")).args(&args));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(
            text(&out.stderr).lines().count(),
            1,
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // A program only root can reach: the dropped uid cannot exec it, and the grader says so.
    if nix::unistd::getuid().is_root() {
        let private = private_dir();
        let prog = private.path().join("impl.sh");
        std::fs::write(&prog, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&prog, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let out = run(Command::new(bin("ipclab"))
            .args(["grade", "2", "--impl"])
            .arg(&prog));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(
            err.contains("cannot exec") && err.contains("as uid 61") && err.contains("EACCES"),
            "{err}"
        );
    }
    machine_clean();
}

/// The reference passes its own contract, and `grade all` reports every lab with a contract.
#[test]
fn grade_references_pass() {
    let _forks = common::fork_guard();
    let (code, v) = grade(&["--runs", "5"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["score"], v["max_score"]);
    let out = run(Command::new(bin("ipclab")).args(["grade", "all", "--format", "json"]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(all["passed"], true);
    let labs: Vec<u64> = all["labs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["lab"].as_u64().unwrap())
        .collect();
    let with_contract: Vec<u64> = ipclab::spec::all()
        .unwrap()
        .iter()
        .filter(|s| s.contract.is_some())
        .map(|s| s.lab.number as u64)
        .collect();
    assert_eq!(labs, with_contract);
    machine_clean();
}

/// Without ptrace the grader falls back to /proc polling, says so, and still judges right.
#[test]
fn grade_lab2_proc_polling_fallback() {
    let _forks = common::fork_guard();
    for (variant, want) in [
        ("fork", vec![]),
        ("leak-fifos", vec!["no-leaked-files"]),
        ("no-wait-dead", vec!["no-zombies"]),
        ("helper", vec!["no-leftover-processes"]),
    ] {
        let cmd = py(variant);
        let (_, v) = grade(&["--impl", &cmd, "--no-ptrace", "--seed", "4"]);
        assert!(
            v["runs"][0]["tracking"]
                .as_str()
                .unwrap()
                .starts_with("/proc polling"),
            "{}",
            v["runs"][0]["tracking"]
        );
        assert_eq!(failing(&v), set(&want), "{variant}");
    }
    machine_clean();
}

/// A fork bomb is bounded and cleaned up — tested only where a real bound exists.
#[test]
fn grade_lab2_fork_bomb_is_contained() {
    let _forks = common::fork_guard();
    let root = nix::unistd::getuid().is_root();
    let cgroup = std::path::Path::new("/sys/fs/cgroup/pids/cgroup.procs").exists();
    if !root && std::env::var_os("IPCLAB_TEST_NPROC_BOUND").is_none() {
        eprintln!("skip: RLIMIT_NPROC binds here, but only a root run (cgroup or uid drop) is known to be contained");
        return;
    }
    let cmd = py("fork-bomb");
    let (code, v) = grade(&["--impl", &cmd, "--timeout", "3", "--seed", "1"]);
    assert_eq!(code, 1);
    let t = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "timeout")
        .unwrap();
    assert_eq!(t["passed"], false);
    assert!(
        t["detail"].as_str().unwrap().contains("the grader killed"),
        "{t}"
    );
    if root && cgroup {
        assert!(
            v["protections"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p.as_str().unwrap().contains("pids cgroup")),
            "{}",
            v["protections"]
        );
    }
    machine_clean();
}

/// Graded by an unprivileged user (as on a student's machine): no cgroup, RLIMIT_NPROC, same verdicts.
#[test]
fn grade_lab2_as_unprivileged_user() {
    let _forks = common::fork_guard();
    let bins = world_readable_bins(&[
        "ipclab",
        "pingpong",
        "pingpong-secondary",
        "libipclab_race.so",
    ]);
    let Some(mut cmd) = as_nobody(&bins.path().join("ipclab")) else {
        return;
    };
    let out = run(cmd
        .env("TMPDIR", "/tmp")
        .args(["grade", "2", "--runs", "3", "--format", "json"]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["protections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().contains("RLIMIT_NPROC")),
        "{}",
        v["protections"]
    );
    let copy = world_dir("ipclab-fix-");
    let script = copy.path().join("pingpong.py");
    std::fs::copy(fixture("pingpong.py"), &script).unwrap();
    // `ipclab grade 2 --format json EXTRA --impl "python3 pingpong.py VARIANT"` as uid 65534.
    let grade_as_nobody = |variant: &str, extra: &[&str]| -> Value {
        let imp = format!("/usr/bin/python3 {} {variant}", script.display());
        let out = run(as_nobody(&bins.path().join("ipclab"))
            .unwrap()
            .env("TMPDIR", "/tmp")
            .args(["grade", "2", "--format", "json"])
            .args(extra)
            .args(["--impl", &imp]));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out.stderr)))
    };
    let v = grade_as_nobody("leak-fifos", &[]);
    assert_eq!(failing(&v), set(&["no-leaked-files"]));
    // Killed at its time limit, a program leaves its shm object in the machine's /dev/shm
    // (no box of its own as a normal user): the grader removes it and says so.
    let mine = || -> Vec<String> {
        use std::os::unix::fs::MetadataExt;
        dir_entries(std::path::Path::new("/dev/shm"))
            .into_iter()
            .filter(|n| n.starts_with("pingpong-"))
            .filter(|n| std::fs::metadata(format!("/dev/shm/{n}")).is_ok_and(|m| m.uid() == NOBODY))
            .collect()
    };
    assert!(mine().is_empty(), "{:?}", mine());
    let v = grade_as_nobody("shm-hang", &["--timeout", "2"]);
    assert!(failing(&v).contains("timeout"), "{}", v["checks"]);
    assert!(mine().is_empty(), "left in /dev/shm: {:?}", mine());
    assert!(
        v["runs"][0]["left_in_box"]
            .to_string()
            .contains("/dev/shm/pingpong-"),
        "{}",
        v["runs"][0]
    );
    machine_clean();
}
