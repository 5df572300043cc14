//! The `ipclab` command: list, walkthroughs end to end (also as a student), doctor, clean.

mod common;
use common::*;
use std::process::Command;

fn ipclab() -> Command {
    Command::new(bin("ipclab"))
}

/// `list` names every lab with a spec and its programs.
#[test]
fn cli_list_names_every_lab() {
    let _forks = common::fork_guard();
    let out = run(ipclab().arg("list"));
    let s = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    for spec in ipclab::spec::all().unwrap() {
        assert!(
            s.contains(&format!("lab {}  {}", spec.lab.number, spec.lab.name)),
            "{s}"
        );
        for b in &spec.lab.binaries {
            assert!(s.contains(b.as_str()));
        }
    }
}

/// An unknown lab or a bad argument: one line, exit 2.
#[test]
fn cli_unknown_lab_is_exit_2() {
    let _forks = common::fork_guard();
    // Grading on real machines is refused with the reason: nothing is boxed over ssh.
    for args in [
        vec!["lab", "99"],
        vec!["lab", "two"],
        vec!["frobnicate"],
        vec!["grade", "9", "--hosts", "/etc/hostname"],
    ] {
        let out = run(ipclab().args(&args));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            text(&out.stderr).lines().count(),
            1,
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

/// Every walkthrough runs to the end, checks its own expectations, and leaves nothing behind.
#[test]
fn cli_walkthroughs_run_to_the_end_clean() {
    let _forks = common::fork_guard();
    for spec in ipclab::spec::all().unwrap() {
        let n = spec.lab.number.to_string();
        let out = run(ipclab().args(["lab", &n]));
        let s = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "lab {n}:\n{s}\n{}",
            text(&out.stderr)
        );
        assert!(
            s.contains(&format!(
                "Lab {n} walkthrough: all steps behaved as described."
            )),
            "{s}"
        );
        assert!(!s.contains("✗"), "{s}");
        // The same walkthrough in French says the same: as many steps and checks, all held.
        let fr = run(ipclab().args(["lab", &n, "--lang", "fr"]));
        let f = text(&fr.stdout);
        assert_eq!(fr.status.code(), Some(0), "lab {n} in French:\n{f}");
        assert!(
            f.contains(&format!(
                "Déroulé du TP {n} : toutes les étapes se sont passées comme décrit."
            )),
            "{f}"
        );
        assert_eq!(
            s.matches("\n== Step ").count(),
            f.matches("\n== Étape ").count(),
            "lab {n}: steps"
        );
        assert_eq!(
            s.matches('✓').count(),
            f.matches('✓').count(),
            "lab {n}: checks"
        );
    }
    Clean::new("ipclab").check();
}

/// `--step` pauses after each step's explanation and output, and inside a step while the state
/// it describes is live: at lab 2's zombie pause, the secondary is a zombie.
#[test]
fn cli_step_pauses_while_the_state_is_live() {
    use std::io::{Read, Write};
    let _forks = common::fork_guard();
    let mut child = ipclab()
        .args(["lab", "2", "--step"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut bytes = Vec::new();
    let mut pauses = Vec::new();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).unwrap() == 1 {
        bytes.push(byte[0]);
        if bytes.ends_with(b"Enter to go on ") {
            let seen = String::from_utf8_lossy(&bytes).into_owned();
            let prompt = seen.rsplit('⏸').next().unwrap_or("").to_string();
            if prompt.contains("is a zombie now") {
                let pid = number_after(&prompt, "secondary ").unwrap();
                let z = ipclab::inspect::info(pid);
                assert!(
                    z.is_some_and(|p| p.is_zombie()),
                    "not a zombie at the pause: {prompt}"
                );
            }
            pauses.push((prompt, seen.len()));
            stdin.write_all(b"\n").unwrap();
        }
    }
    drop(stdin);
    let seen = String::from_utf8_lossy(&bytes).into_owned();
    let out = finish(child);
    assert_eq!(out.status.code(), Some(0), "{seen}{}", text(&out.stderr));
    assert!(
        pauses.iter().any(|(p, _)| p.contains("is a zombie now")),
        "{pauses:?}"
    );
    // The first pause comes after step 1's explanation and output, not after its title alone.
    let first = pauses[0].1;
    assert!(
        seen[..first].contains("A FIFO (named pipe)") && seen[..first].contains("ls -l"),
        "{seen}"
    );
    assert!(!seen.contains("press Enter or close stdin"), "{seen}");
}

/// The walkthroughs also run for an unprivileged uid, as students will run them.
#[test]
fn cli_walkthroughs_run_as_unprivileged_user() {
    let _forks = common::fork_guard();
    let mut names: Vec<&str> = vec!["ipclab"];
    let specs = ipclab::spec::all().unwrap();
    for s in &specs {
        names.extend(s.lab.binaries.iter().map(|b| b.as_str()));
    }
    let bins = world_readable_bins(&names);
    // A dropped uid cannot write root's TMPDIR, if one is set, nor root's checkout: it runs in
    // a directory of its own, which is also its TMPDIR, as a student's home would be.
    let tmp = world_dir("ipclab-cli-tmp-");
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    for spec in &specs {
        let Some(mut cmd) = as_nobody(&bins.path().join("ipclab")) else {
            return;
        };
        let n = spec.lab.number.to_string();
        let out = run(cmd
            .env("TMPDIR", tmp.path())
            .current_dir(tmp.path())
            .args(["lab", &n]));
        let s = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "lab {n} as uid {NOBODY}:\n{s}\n{}",
            text(&out.stderr)
        );
        // What it keeps for its reader is where it said, and nothing else is left.
        let mut left = dir_entries(tmp.path());
        left.retain(|e| e != "target");
        if spec.lab.number == 7 {
            let svg = tmp.path().join("target/lab7.svg");
            assert!(svg.exists(), "{s}");
            assert!(s.contains(&svg.display().to_string()), "{s}");
        }
        assert!(left.is_empty(), "lab {n} as uid {NOBODY} left {left:?}");
    }
}

/// doctor: every capability the labs need is present on this machine.
#[test]
fn cli_doctor_reports_this_machine_usable() {
    let _forks = common::fork_guard();
    let out = run(ipclab().arg("doctor"));
    let s = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{s}");
    for what in [
        "/dev/shm",
        "FIFOs",
        "PR_SET_CHILD_SUBREAPER",
        "pidfd_open",
        "strace",
    ] {
        assert!(s.contains(what), "{what} not reported: {s}");
    }
}

/// clean removes our objects whose creator is dead, and only those.
#[test]
fn cli_clean_removes_only_orphaned_objects() {
    let _forks = common::fork_guard();
    let uid = nix::unistd::getuid();
    let dead = {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let tag = format!("{:08x}", rand::random::<u32>());
    let stale = format!("/dev/shm/ipclab-{uid}-{dead}-{tag}");
    let live = format!("/dev/shm/ipclab-{uid}-{}-{tag}", std::process::id());
    std::fs::write(&stale, b"").unwrap();
    std::fs::write(&live, b"").unwrap();
    let out = run(ipclab().arg("clean"));
    let kept = std::path::Path::new(&live).exists();
    let _ = std::fs::remove_file(&live);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        !std::path::Path::new(&stale).exists(),
        "{}",
        text(&out.stdout)
    );
    assert!(kept, "an object whose creator lives must be kept");
}
