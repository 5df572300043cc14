//! The grading box against hostile submissions (tests/fixtures/hostile/hostile.py), after
//! DOMjudge's runguard tests: one row per attack, its expected outcome, and a check of the
//! machine scoped to that run's own box (its uid, its cgroup, its paths) afterwards.
//! Run as root (CI); the normal-user rows run the grader itself under `setpriv`.
//!
//! | attack | as root | as a normal user (user namespaces allowed) |
//! |---|---|---|
//! | read the grader's environment, descriptors | fixed environment, only 0–2 | the same |
//! | read the references, the checkout | ENOENT (hidden), refs dir EACCES | visible (not hidden) |
//! | ptrace the grader | EPERM | EPERM (grader not dumpable) |
//! | kill(-1, SIGKILL) | only its box (own uid) | only its box (own PID namespace) |
//! | fork bomb beside a correct grading | the other passes (own uid, cgroup) | not run |
//! | files in /tmp, /dev/shm, SysV segment | reported, gone with the box | not run (shared /tmp) |
//! | 100 MiB file, 3 GiB malloc | EFBIG, MemoryError | EFBIG |
//! | fill the disk | ENOSPC within the box's tmpfs | not run (no tmpfs) |
//! | 5 MiB line, 95 MiB stderr | counted, clipped, transcript < 3 MiB | not run |
//! | CLONE_UNTRACED + setsid + fork | killed with the cgroup | killed with the PID namespace |
//! | close stdout, sleep 5 s | grader CPU < 0.1 s | not run |
//! | unreachable program, no CAP_SYS_ADMIN | exit 3 / degraded and said | not run |
//! | SIGINT/TERM/HUP/KILL to the grader | 130/143/129, or swept by `ipclab clean` | SIGTERM: 143, scratch removed |
//! | lab 4 roles against the reference watchdog | EPERM, EPERM, EACCES (second uid) | not run |
//!
//! Fork rule: tests never fork; the grader is spawned with Command and waited for.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hostile/hostile.py")
        .display()
        .to_string()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `ipclab grade 2 --impl 'hostile.py ATTACK'` with JSON on stdout.
fn grade(attack: &str, extra: &[&str], env: &[(&str, &str)]) -> (i32, serde_json::Value, String) {
    grade_lab("2", attack, extra, env)
}

fn grade_lab(
    lab: &str,
    attack: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (i32, serde_json::Value, String) {
    let mut c = Command::new(bin("ipclab"));
    c.args(["grade", lab, "--seed", "3", "--format", "json", "--impl"])
        .arg(format!("/usr/bin/python3 {} {attack}", fixture()))
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    for (k, v) in env {
        c.env(k, v);
    }
    let out = run(&mut c);
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), v, text(&out.stderr))
}

/// FINDING lines of the run's transcript, as (name, value).
fn findings(v: &serde_json::Value) -> Vec<(String, String)> {
    let t = v["runs"][0]["transcript"].as_str().unwrap_or("");
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(t)).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix("FINDING "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn finding(v: &serde_json::Value, name: &str) -> String {
    findings(v)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no FINDING {name} in {v}"))
}

/// The box uid the report names ("uid: 61000 (...)").
fn box_uid(v: &serde_json::Value) -> Option<u32> {
    v["protections"]
        .as_array()?
        .iter()
        .filter_map(|p| p.as_str()?.strip_prefix("uid: "))
        .find_map(|r| r.split_whitespace().next()?.parse().ok())
}

fn uid_of(pid: i32) -> Option<u32> {
    std::fs::metadata(format!("/proc/{pid}"))
        .ok()
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
}

/// Nothing of box `uid` remains: no process, no mount, no cgroup or scratch of grader `pid`.
fn box_gone(uid: Option<u32>, grader: Option<u32>) {
    if let Some(u) = uid {
        // A zombie whose parent is PID 1 (orphans of a SIGKILLed grader, killed by the sweep) is
        // init's to reap, every ~2 s here: waited for within the safety net, never judged.
        let deadline = std::time::Instant::now() + SAFETY;
        let left = loop {
            let left: Vec<ipclab::inspect::ProcInfo> = ipclab::inspect::all()
                .into_iter()
                .filter(|p| uid_of(p.pid) == Some(u))
                .collect();
            if !left.iter().all(|p| p.is_zombie() && p.ppid == 1)
                || left.is_empty()
                || std::time::Instant::now() > deadline
            {
                break left;
            }
            let _ = ipclab::signals::poll_fds(&[], Some(std::time::Duration::from_millis(50)));
        };
        let left: Vec<String> = left.iter().map(|p| p.row()).collect();
        assert!(left.is_empty(), "box uid {u} left: {left:?}");
        let b = PathBuf::from(format!("/run/ipclab/box-{u}"));
        assert!(!b.exists(), "{} left", b.display());
    }
    if let Some(g) = grader {
        for base in [
            "/sys/fs/cgroup/pids",
            "/sys/fs/cgroup/freezer",
            "/tmp",
            "/run/ipclab",
        ] {
            let left: Vec<String> = std::fs::read_dir(base)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| {
                            n.starts_with(&format!("ipclab-grade-{g}-"))
                                || n.starts_with(&format!("ipclab-stage-{g}-"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            assert!(left.is_empty(), "grader {g} left in {base}: {left:?}");
        }
    }
}

/// The environment is the box's, whatever the grader's holds; no descriptor beyond 0-2 passes,
/// even one the grader inherited without close-on-exec; the uid has a name.
#[test]
fn hostile_environment_and_descriptors_do_not_leak() {
    let _forks = common::fork_guard();
    // fd 7 open without CLOEXEC in the grader (as `/usr/bin/time -o F` leaves one).
    let mut c = Command::new("/bin/sh");
    c.args(["-c", "exec 7>/dev/null; exec \"$0\" \"$@\""])
        .arg(bin("ipclab"))
        .args(["grade", "2", "--seed", "3", "--format", "json", "--impl"])
        .arg(format!("/usr/bin/python3 {} environment", fixture()))
        .env("SECRET", "hunter2")
        .env("PYTHONUNBUFFERED", "1")
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let env: Vec<(String, String)> = serde_json::from_str(&finding(&v, "env")).unwrap();
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["HOME", "LANG", "LOGNAME", "PATH", "USER"],
        "{env:?}"
    );
    assert!(!format!("{v}").contains("hunter2"));
    // listdir's own descriptor is the only one above 2.
    let fds = finding(&v, "fds");
    assert_eq!(fds.split(',').count(), 4, "fds {fds}");
    let listed: Vec<String> = v["environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    assert!(listed.iter().any(|e| e.starts_with("PATH=")), "{listed:?}");
    // The limits the header states are the ones in force (wall 10 s: CPU 11 s, files 64 MiB,
    // memory 2 GiB, no core files, a process bound).
    assert_eq!(finding(&v, "limit-CPU"), "11");
    assert_eq!(finding(&v, "limit-FSIZE"), (64u64 << 20).to_string());
    assert_eq!(finding(&v, "limit-AS"), (2048u64 << 20).to_string());
    assert_eq!(finding(&v, "limit-CORE"), "0");
    let nproc: u64 = finding(&v, "limit-NPROC").parse().unwrap();
    if is_root() {
        // A fresh leased uid runs nothing else: the bound is the contract's max_procs.
        assert_eq!(nproc, 64);
    }
    let header = format!("{}", v["protections"]);
    assert!(
        header.contains("wall 10.0 s, CPU 11 s, memory 2048 MiB"),
        "{header}"
    );
    if is_root() {
        let uid: u32 = finding(&v, "uid").parse().unwrap();
        assert!((61000..=61999).contains(&uid), "uid {uid}");
        assert_eq!(finding(&v, "user"), format!("ipclab{uid}"));
        box_gone(Some(uid), None);
    }
}

/// The checkout, the reference programs and the grader are out of reach from inside.
#[test]
fn hostile_cannot_reach_references_checkout_or_grader() {
    let _forks = common::fork_guard();
    let (code, v, err) = grade(
        "reach",
        &[],
        &[("IPCLAB_CHECKOUT", env!("CARGO_MANIFEST_DIR"))],
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(finding(&v, "ptrace-grader"), "EPERM");
    if is_root() {
        assert_eq!(finding(&v, "reference"), "ENOENT", "{v}");
        // The env var is not passed (fixed environment): the test names the checkout instead.
        let (_, v2, _) = grade("reach", &[], &[]);
        assert_ne!(finding(&v2, "checkout"), "readable");
        assert_eq!(finding(&v, "refs-dir"), "EACCES");
        assert_eq!(finding(&v, "state-dir"), "EACCES");
    }
}

/// kill(-1, SIGKILL) reaches only the box: an unrelated process of another uid survives.
#[test]
fn hostile_kill_minus_one_stays_in_its_box() {
    let _forks = common::fork_guard();
    if !is_root() {
        eprintln!("skipped: needs root (the box's own uid)");
        return;
    }
    let mut bystander = sleeper_as(65534);
    let (code, v, err) = grade("kill-all", &[], &[]);
    let alive = ipclab::inspect::info(bystander.id() as i32).is_some_and(|i| !i.is_zombie());
    let _ = bystander.kill();
    let _ = bystander.wait();
    assert!(
        alive,
        "kill -1 in a box killed an unrelated uid-65534 process"
    );
    assert_eq!(code, 1, "{err}");
    box_gone(box_uid(&v), None);
}

/// A fork bomb graded beside a correct program: the correct one still passes (own uid, own
/// cgroup: RLIMIT_NPROC is not shared).
#[test]
fn hostile_fork_bomb_does_not_starve_a_concurrent_grading() {
    let _forks = common::fork_guard();
    let mut bomb = Command::new(bin("ipclab"));
    bomb.args([
        "grade",
        "2",
        "--seed",
        "3",
        "--timeout",
        "4",
        "--format",
        "json",
        "--impl",
    ])
    .arg(format!("/usr/bin/python3 {} fork-bomb", fixture()))
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let bomb = bomb.spawn().unwrap();
    let (code, v, err) = grade("pingpong", &["--runs", "3"], &[]);
    let b = finish(bomb);
    assert_eq!(
        code, 0,
        "correct program failed beside a fork bomb: {err}\n{v}"
    );
    assert_eq!(b.status.code(), Some(1), "{}", text(&b.stderr));
    let bv: serde_json::Value = serde_json::from_slice(&b.stdout).unwrap();
    box_gone(box_uid(&bv), None);
    box_gone(box_uid(&v), None);
}

/// Files left in /tmp and /dev/shm outside the contract's names and a System V segment are
/// reported, not judged, and gone with the box.
#[test]
fn hostile_leftovers_outside_dir_are_seen_and_removed() {
    let _forks = common::fork_guard();
    if !is_root() {
        eprintln!("skipped: needs root (private /tmp, /dev/shm, IPC namespace)");
        return;
    }
    let tag = format!("{:08x}", rand::random::<u32>());
    let (code, v, err) = grade("leave-things", &["--timeout", "20"], &[]);
    let _ = tag;
    assert_eq!(code, 0, "{err}\n{v}");
    let left: Vec<String> = v["runs"][0]["left_in_box"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    assert!(
        left.contains(&"/tmp/ipclab-hostile-x".to_string()),
        "{left:?}"
    );
    assert!(
        left.contains(&"/dev/shm/ipclab-hostile-x".to_string()),
        "{left:?}"
    );
    assert!(left.iter().any(|l| l.starts_with("SysV shm")), "{left:?}");
    assert!(!Path::new("/tmp/ipclab-hostile-x").exists());
    assert!(!Path::new("/dev/shm/ipclab-hostile-x").exists());
    let sysv = std::fs::read_to_string("/proc/sysvipc/shm").unwrap();
    assert!(!sysv.contains(&format!("{}", 0x1badb00)), "{sysv}");
    box_gone(box_uid(&v), None);
}

/// Each limit is hit: file size (RLIMIT_FSIZE 64 MiB), the box's tmpfs (256 MiB), memory
/// (RLIMIT_AS 2 GiB), output (counted past the cap, long lines clipped with their count).
#[test]
fn hostile_limits_hold() {
    let _forks = common::fork_guard();
    let (_, v, err) = grade("file-size", &[], &[]);
    assert_eq!(finding(&v, "file-size"), "EFBIG", "{err}");
    let (_, v, _) = grade("memory", &[], &[]);
    assert_eq!(finding(&v, "memory"), "MemoryError");
    if is_root() {
        let (_, v, _) = grade("disk", &[], &[]);
        let d = finding(&v, "disk");
        assert!(d.starts_with("ENOSPC after "), "{d}");
        let mib: u32 = d["ENOSPC after ".len()..]
            .trim_end_matches(" MiB")
            .parse()
            .unwrap();
        assert!(mib <= 256, "{d}");
    }
    let (code, v, err) = grade("flood", &[], &[]);
    assert_eq!(code, 1, "{err}");
    let p = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "protocol")
        .unwrap();
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.len() < 10_000,
        "protocol detail of {} bytes",
        detail.len()
    );
    let t = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(v["runs"][0]["transcript"].as_str().unwrap()),
    )
    .unwrap();
    assert!(
        t.contains("-- stdout (5242880 bytes)"),
        "stdout count missing"
    );
    assert!(
        t.contains("bytes dropped]"),
        "no clipped line in the transcript"
    );
    assert!(t.len() < 3 << 20, "transcript of {} bytes", t.len());
}

/// A CLONE_UNTRACED child that calls setsid and forks dies with the box (cgroup kill).
#[test]
fn hostile_untraced_daemon_dies_with_the_box() {
    let _forks = common::fork_guard();
    let (code, v, err) = grade("untraced-daemon", &[], &[]);
    assert_eq!(code, 1, "{err}\n{v}");
    let failing: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false && c["skipped"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(failing.contains(&"no-leftover-processes"), "{failing:?}");
    if is_root() {
        box_gone(box_uid(&v), None);
    }
}

/// A closed stdout does not make the grader spin: its own CPU over a 5 s sleep stays < 0.1 s.
#[test]
fn hostile_closed_stdout_keeps_the_grader_quiet() {
    let _forks = common::fork_guard();
    let mut c = Command::new(bin("ipclab"));
    c.args(["grade", "2", "--seed", "3", "--format", "json", "--impl"])
        .arg(format!("/usr/bin/python3 {} closed-stdout", fixture()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let pid = child.id();
    // The grader's own utime + stime (its children's are not in these fields), last read just
    // before it exits.
    let mut ticks = 0u64;
    let deadline = std::time::Instant::now() + SAFETY;
    loop {
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            let f: Vec<&str> = stat
                .rsplit_once(')')
                .unwrap()
                .1
                .split_whitespace()
                .collect();
            if f[0] != "Z" {
                ticks = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
            }
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "grader still running");
        let _ = ipclab::signals::poll_fds(&[], Some(std::time::Duration::from_millis(50)));
    }
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap() as u64;
    let secs = ticks as f64 / hz as f64;
    assert!(
        secs < 0.1,
        "the grader used {secs:.2} s of CPU while its program slept 5 s"
    );
}

/// Bad input is one line and exit 2, before anything runs.
#[test]
fn hostile_bad_input_is_exit_2() {
    let _forks = common::fork_guard();
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "x").unwrap();
    for (args, what) in [
        (vec!["--impl", "/etc/passwd"], "not executable"),
        (vec!["--impl", "/tmp"], "is a directory"),
        (vec!["--impl", "./no/such/file"], "no such file"),
        (
            vec!["--output", "/nonexistent/x", "--format", "json"],
            "no directory /nonexistent",
        ),
        (
            vec!["--output", "/tmp", "--format", "json"],
            "is a directory",
        ),
        (vec!["--uid", "4294967295"], "leased box uid"),
    ] {
        let mut all = vec!["grade", "2"];
        // --output needs its --format first
        if args[0] == "--output" {
            all.extend([args[2], args[3], args[0], args[1]]);
        } else {
            all.extend(args.iter().copied());
        }
        let out = run(Command::new(bin("ipclab")).args(&all));
        let err = text(&out.stderr);
        let last = err.lines().last().unwrap_or("");
        assert_eq!(out.status.code(), Some(2), "{all:?}: {err}");
        assert!(last.contains(what), "{all:?}: {err}");
    }
    let _ = plain;
}

/// A program the box's uid cannot exec: the grader says so (exit 3) instead of hanging.
#[test]
fn hostile_failure_before_exec_is_reported_not_hung() {
    let _forks = common::fork_guard();
    if !is_root() {
        eprintln!("skipped: needs root (a uid drop that cannot reach the program)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let prog = dir.path().join("prog");
    std::fs::write(&prog, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&prog, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out =
        run(Command::new(bin("ipclab")).args(["grade", "2", "--impl", prog.to_str().unwrap()]));
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{err}{}{}",
        text(&out.stdout),
        prog.display()
    );
    assert!(
        err.contains("cannot exec") || err.contains("could not be built"),
        "{err}"
    );
    // Root without CAP_SYS_ADMIN (a default container): degraded, said, and still graded.
    let out = run(Command::new("setpriv")
        .args(["--bounding-set", "-sys_admin"])
        .arg(bin("ipclab"))
        .args(["grade", "2", "--seed", "4"]));
    let s = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{s}{}", text(&out.stderr));
    assert!(
        s.contains("namespaces: none (needs root with CAP_SYS_ADMIN"),
        "{s}"
    );
}

/// SIGINT, SIGTERM, SIGHUP at a seeded random moment: the grader ends its box, exits 128 + n;
/// SIGKILL: what it left is found by the next `ipclab clean`. Nothing of the box remains — in
/// lab 2 (a CLONE_UNTRACED daemon asleep in the box) and in lab 6 (the reference daemon, which
/// outlives each command and so is outside the step's tree).
#[test]
fn hostile_interrupted_grader_leaves_nothing() {
    let _forks = common::fork_guard();
    use nix::sys::signal::Signal;
    let seed: u64 = std::env::var("IPCLAB_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("IPCLAB_TEST_SEED={seed}");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let lab2 = vec![
        "grade".to_string(),
        "2".into(),
        "--format".into(),
        "json".into(),
        "--impl".into(),
        format!("/usr/bin/python3 {} untraced-daemon-sleep", fixture()),
    ];
    let lab6: Vec<String> = ["grade", "6", "--format", "json", "--runs", "3"]
        .map(String::from)
        .to_vec();
    for args in [&lab2, &lab6] {
        for (sig, code) in [
            (Signal::SIGINT, 130),
            (Signal::SIGTERM, 143),
            (Signal::SIGHUP, 129),
            (Signal::SIGKILL, -1),
        ] {
            let delay = rand::RngExt::random_range(&mut rng, 0..400u64);
            interrupt_once(args, sig, code, delay);
        }
    }
}

/// One grader, signalled `delay` ms after its first box exists.
fn interrupt_once(args: &[String], sig: nix::sys::signal::Signal, code: i32, delay: u64) {
    let mut child = Command::new(bin("ipclab"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut err = stderr_reader(&mut child);
    let lease = wait_for_lease(pid);
    let _ = ipclab::signals::poll_fds(&[], Some(std::time::Duration::from_millis(delay)));
    // It may have finished meanwhile (lab 6 is short): then there is nothing to interrupt.
    let sent = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).is_ok();
    let st = child.wait().unwrap();
    let msg = drain(err.get_mut());
    let what = format!("{args:?} {sig} after {delay} ms");
    if sent && code > 0 && !matches!(st.code(), Some(0 | 1)) {
        assert_eq!(st.code(), Some(code), "{what}: {msg}");
        assert!(msg.contains("interrupted by"), "{what}: {msg}");
    } else if code < 0 {
        // SIGKILL: the sweep of the next ipclab removes the box.
        let out = run(Command::new(bin("ipclab")).arg("clean"));
        assert!(out.status.success(), "{what}");
    }
    box_gone(lease, Some(pid));
}

/// The uid whose lease file names grader `pid` (root), once it exists.
fn wait_for_lease(pid: u32) -> Option<u32> {
    if !is_root() {
        return None;
    }
    let deadline = std::time::Instant::now() + SAFETY;
    loop {
        if let Ok(rd) = std::fs::read_dir("/run/ipclab/leases") {
            for e in rd.flatten() {
                let t = std::fs::read_to_string(e.path()).unwrap_or_default();
                if t.trim() == format!("pid {pid}") {
                    let uid = e.file_name().to_string_lossy().parse().ok();
                    if Path::new(&format!("/run/ipclab/box-{}", uid.unwrap_or(0))).exists() {
                        return uid;
                    }
                }
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "grader {pid} never built its box"
        );
        let _ = ipclab::signals::poll_fds(&[], Some(std::time::Duration::from_millis(5)));
    }
}

/// As a normal user (the grader under setpriv): environment wiped, descriptors closed, the
/// grader not ptrace-able by its program (non-dumpable), limits hold.
#[test]
fn hostile_normal_user_gets_the_weaker_box() {
    let _forks = common::fork_guard();
    if !is_root() {
        eprintln!("skipped: needs root to become a normal user");
        return;
    }
    let world = world_dir("ipclab-hostile-");
    // The grader, as that user, writes its transcripts under its cwd.
    std::fs::set_permissions(
        world.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let fx = world.path().join("hostile.py");
    std::fs::copy(fixture(), &fx).unwrap();
    let ipclab = world.path().join("ipclab");
    std::fs::copy(bin("ipclab"), &ipclab).unwrap();
    let as_user = |attack: &str| {
        let out = run(Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&ipclab)
            .args(["grade", "2", "--seed", "3", "--format", "json", "--impl"])
            .arg(format!("/usr/bin/python3 {} {attack}", fx.display()))
            .env("SECRET", "hunter2")
            .current_dir(world.path()));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        (out.status.code(), v, text(&out.stderr))
    };
    let (code, v, err) = as_user("environment");
    assert_eq!(code, Some(1), "{err}");
    let t = world
        .path()
        .join(v["runs"][0]["transcript"].as_str().unwrap());
    let t = std::fs::read_to_string(t).unwrap();
    assert!(!t.contains("hunter2"));
    assert!(t.contains("FINDING uid=65534"), "{t}");
    let (code, v, err) = as_user("reach");
    assert_eq!(code, Some(1), "{err}");
    let t = world
        .path()
        .join(v["runs"][0]["transcript"].as_str().unwrap());
    let t = std::fs::read_to_string(t).unwrap();
    assert!(t.contains("FINDING ptrace-grader=EPERM"), "{t}");
    // kill(-1) inside the box's PID namespace reaches nothing outside: not the grader, not
    // another process of the same uid.
    let mut bystander = sleeper_as(65534);
    let (code, v, err) = as_user("kill-all");
    let alive = ipclab::inspect::info(bystander.id() as i32).is_some_and(|i| !i.is_zombie());
    let _ = bystander.kill();
    let _ = bystander.wait();
    assert_eq!(code, Some(1), "the grader did not survive kill(-1): {err}");
    assert!(alive, "kill(-1) reached a process outside the box");
    assert!(
        format!("{}", v["protections"]).contains("PID (the box's own init"),
        "{}",
        v["protections"]
    );
    let (_, v, _) = as_user("file-size");
    let t = world
        .path()
        .join(v["runs"][0]["transcript"].as_str().unwrap());
    assert!(std::fs::read_to_string(t)
        .unwrap()
        .contains("FINDING file-size=EFBIG"));
    // SIGTERM to a normal user's grader: it ends its box (the untraced daemon in the PID
    // namespace too), removes its scratch directory and exits 143.
    let mut g = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&ipclab)
        .args(["grade", "2", "--format", "json", "--impl"])
        .arg(format!(
            "/usr/bin/python3 {} untraced-daemon-sleep",
            fx.display()
        ))
        .current_dir(world.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let gpid = g.id();
    let deadline = std::time::Instant::now() + SAFETY;
    while !std::fs::read_dir("/tmp").unwrap().flatten().any(|e| {
        e.file_name()
            .to_string_lossy()
            .starts_with(&format!("ipclab-grade-{gpid}-"))
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "no scratch directory appeared"
        );
        let _ = ipclab::signals::poll_fds(&[], Some(std::time::Duration::from_millis(5)));
    }
    // Any moment from here is a moment to interrupt: the grader handles signals before it
    // makes its scratch directory.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(gpid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let st = g.wait().unwrap();
    assert_eq!(st.code(), Some(143));
    let fixture_left: Vec<String> = ipclab::inspect::all()
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{}/cmdline", p.pid))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&fx.display().to_string()))
        })
        .map(|p| p.row())
        .collect();
    assert!(fixture_left.is_empty(), "left: {fixture_left:?}");
    let left: Vec<String> = std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ipclab-grade-"))
        .filter(|n| {
            std::fs::metadata(format!("/tmp/{n}"))
                .is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 65534)
        })
        .collect();
    assert!(left.is_empty(), "scratch left: {left:?}");
}

/// Lab 4's reference watchdog runs beside the implementation under the box's second uid: the
/// implementation's dispatcher can neither signal nor trace it, nor forge its events.
#[test]
fn hostile_lab4_roles_cannot_reach_the_reference_watchdog() {
    let _forks = common::fork_guard();
    if !is_root() {
        eprintln!("skipped: needs root (the box's two uids)");
        return;
    }
    let (code, v, err) = grade_lab("4", "lab4-spy", &["--timeout", "4"], &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(finding(&v, "signal-watchdog"), "EPERM", "{v}");
    assert_eq!(finding(&v, "ptrace-watchdog"), "EPERM");
    assert_eq!(finding(&v, "events"), "EACCES");
    let uid: u32 = finding(&v, "uid").parse().unwrap();
    assert_eq!(Some(uid), box_uid(&v));
    let p = format!("{}", v["protections"]);
    assert!(p.contains("references: watchdog runs as uid"), "{p}");
    box_gone(Some(uid), None);
}
