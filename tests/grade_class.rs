//! A class of 20 lab 2 submissions graded in parallel: correct ones (run scripts, main.py,
//! main.c) pass, each fault fails its check, a compile error and a missing entry point are
//! reported as such, a hanging one times out, a fork bomb is bounded, one that kills every
//! process it may (`kill -9 -1`) harms no one else; the class CSV says all that, each report sits
//! beside its submission, and nothing is left running.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// A directory the test made beside a temporary one, removed when the test ends.
struct RemoveOnDrop(std::path::PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn grade_class_of_twenty_in_parallel() {
    let _forks = common::fork_guard();
    class_of_twenty();
}

/// Soak (make soak): the class graded ten times over, each time judged exactly as once.
#[test]
#[ignore]
fn grade_class_soak_ten_times() {
    let _forks = common::fork_guard();
    for _ in 0..10 {
        class_of_twenty();
    }
}

fn class_of_twenty() {
    let fixtures = common::lab_dir(2).join("fixtures");
    let py = fixtures.join("pingpong.py");
    let class = world_dir("ipclab-class-");
    // Each submission carries its own copy of the fixture: the box shows a submission its own
    // directory only (the checkout is hidden).
    let script = |variant: &str, before: &str| {
        format!(
            "#!/bin/sh\n{before}exec /usr/bin/python3 \"$(dirname \"$0\")/pingpong.py\" {variant} \"$@\"\n"
        )
    };
    let main_py = "import os, sys\nhere = os.path.dirname(os.path.abspath(__file__))\nos.execv('/usr/bin/python3', ['python3', os.path.join(here, 'pingpong.py'), 'fork'] + sys.argv[1:])\n".to_string();
    let py_text = std::fs::read_to_string(&py).unwrap();
    let c = std::fs::read_to_string(fixtures.join("pingpong.c")).unwrap();
    // (student, file, content, expected failing checks or the error's words)
    let subs: Vec<(&str, &str, String, &str)> = vec![
        ("alice", "run", script("fork", ""), ""),
        ("bob", "run", script("exec", ""), ""),
        ("carol", "run", script("subprocess", ""), ""),
        ("dave", "main.py", main_py.clone(), ""),
        ("erin", "main.c", c.clone(), ""),
        (
            "frank",
            "main.c",
            "int main(void) { return 0 }\n".into(),
            "compile error",
        ),
        (
            "grace",
            "README",
            "nothing to run\n".into(),
            "no entry point",
        ),
        ("heidi", "run", script("never-answers", ""), "timeout"),
        ("ivan", "run", script("fork-bomb", ""), "*"),
        ("judy", "run", script("no-wait-dead", ""), "no-zombies"),
        (
            "mallory",
            "run",
            script("leak-fifos", ""),
            "no-leaked-files",
        ),
        ("niaj", "run", script("wrong-line", ""), "protocol"),
        (
            "olivia",
            "run",
            script("helper", ""),
            "no-leftover-processes",
        ),
        ("peggy", "run", script("anon-pipes", ""), "named-pipes"),
        ("rupert", "run", script("late-wait", ""), "no-zombies"),
        (
            "sybil",
            "run",
            script("no-wait-running", ""),
            "shutdown-order",
        ),
        ("trent", "main.c", c.clone(), ""),
        (
            "ursula",
            "run",
            script("fork", "kill -KILL -1 2>/dev/null\n"),
            "",
        ),
        ("victor", "run", script("exec", ""), ""),
        // A compile bomb: cc would read /dev/zero forever; its memory limit stops it.
        (
            "wendy",
            "main.c",
            "#include \"/dev/zero\"\n".into(),
            "compile error",
        ),
        // Another student's code, included at compile time: the class is out of the box's sight.
        (
            "yves",
            "main.c",
            "#include \"../erin/main.c\"\n".into(),
            "compile error",
        ),
        // A planted link: staging never follows it (nothing of /etc is copied or chowned).
        ("xavier", "run", script("fork", ""), ""),
        ("zoe", "main.py", main_py, ""),
    ];
    assert_eq!(subs.len(), 23);
    for (who, file, text, _) in &subs {
        let mode = if *file == "run" { 0o755 } else { 0o644 };
        write(&class.path().join(who).join(file), text, mode);
        write(&class.path().join(who).join("pingpong.py"), &py_text, 0o644);
        std::fs::set_permissions(
            class.path().join(who),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink("/etc", class.path().join("xavier/.ipclab-build")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", class.path().join("xavier/ipclab-report.txt"))
        .unwrap();
    std::os::unix::fs::symlink("/etc", class.path().join("xavier/etc-link")).unwrap();
    let out = run(Command::new(bin("ipclab")).args([
        "grade",
        "2",
        "--submissions",
        class.path().to_str().unwrap(),
        "--jobs",
        "4",
        "--runs",
        "1",
        "--seed",
        "7",
        "--timeout",
        "4",
    ]));
    let summary = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{summary}\n{}",
        text(&out.stderr)
    );
    // Reports go beside the class, never into a submission.
    let results = class.path().with_file_name(format!(
        "{}-results",
        class.path().file_name().unwrap().to_string_lossy()
    ));
    let _cleanup = RemoveOnDrop(results.clone());
    let csv = std::fs::read_to_string(results.join("class-summary.csv")).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("class-summary.json")).unwrap())
            .unwrap();
    assert_eq!(json["students"].as_array().unwrap().len(), 23);
    assert_eq!(csv.lines().count(), 24, "{csv}");
    for (who, _, _, want) in &subs {
        let line = csv
            .lines()
            .find(|l| l.starts_with(&format!("\"{who}\",")))
            .unwrap_or_else(|| panic!("{who} missing: {csv}"));
        let student = json["students"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["student"] == *who)
            .unwrap();
        match *want {
            "" => {
                assert_eq!(student["passed"], true, "{who}: {line}");
                assert_eq!(student["score"], student["max_score"], "{who}: {line}");
                assert!(results.join(who).join("ipclab-report.json").exists());
                assert!(!class.path().join(who).join("ipclab-report.json").exists());
            }
            "*" => assert_eq!(student["passed"], false, "{who}: {line}"),
            "compile error" | "no entry point" => {
                let err = student["error"].as_str().unwrap_or("");
                assert!(err.contains(want), "{who}: {line}");
                assert_eq!(student["score"], 0);
            }
            check => {
                let failing: Vec<&str> = student["failing"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap())
                    .collect();
                assert!(failing.contains(&check), "{who}: {line}");
                assert!(student["error"].is_null(), "{who}: {line}");
            }
        }
    }
    assert!(results.join("frank/ipclab-report-compile.txt").exists());
    assert!(!class.path().join("frank/.ipclab-build").exists());
    // Not a terminal: no progress bar in the output.
    assert!(!text(&out.stderr).contains('\r'));
    // Root never followed xavier's links: /etc and /etc/shadow are as they were.
    let etc = std::fs::metadata("/etc").unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&etc), 0);
    let shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
    assert!(
        !shadow.contains("lab 2"),
        "a report was written through a link"
    );
    let xavier = json["students"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["student"] == "xavier")
        .unwrap();
    assert!(
        format!("{}", xavier["skipped"]).contains("etc-link"),
        "{xavier}"
    );
    // Nothing of any job slot's uid is left, nor a cgroup.
    let left: Vec<String> = ipclab::inspect::all()
        .into_iter()
        .filter(|p| {
            std::fs::metadata(format!("/proc/{}", p.pid))
                .map(|m| {
                    use std::os::unix::fs::MetadataExt;
                    (61000..61064).contains(&m.uid())
                })
                .unwrap_or(false)
        })
        .map(|p| p.row())
        .collect();
    assert!(left.is_empty(), "left running: {left:?}");
    Clean::new("ipclabg").check();
}

/// Two submissions graded at the same moment, one spending three seconds killing every process
/// it may (`kill -9 -1`, a shell builtin: no fork) before it plays the contract: both score full
/// marks. Slots never share a uid, nor a uid with anything else running (each leases its own).
#[test]
fn grade_class_a_neighbour_killing_its_uid_harms_no_other_slot() {
    let _forks = common::fork_guard();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: one uid per job slot needs root");
        return;
    }
    let py_text = std::fs::read_to_string(common::fixture(2, "pingpong.py")).unwrap();
    let class = world_dir("ipclab-class-");
    let script = |before: &str| {
        format!(
            "#!/bin/sh\n{before}exec /usr/bin/python3 \"$(dirname \"$0\")/pingpong.py\" fork \"$@\"\n"
        )
    };
    let killer = "read s _ < /proc/uptime\nwhile :; do\n  read t _ < /proc/uptime\n  \
                  [ \"${t%.*}\" -ge $((${s%.*} + 3)) ] && break\n  kill -KILL -1 2>/dev/null\ndone\n";
    for (who, before) in [("alice", ""), ("mallory", killer)] {
        write(&class.path().join(who).join("run"), &script(before), 0o755);
        write(&class.path().join(who).join("pingpong.py"), &py_text, 0o644);
        std::fs::set_permissions(
            class.path().join(who),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
    }
    let out = run(Command::new(bin("ipclab"))
        .args(["grade", "2", "--submissions"])
        .arg(class.path())
        .args([
            "--jobs",
            "2",
            "--runs",
            "1",
            "--seed",
            "7",
            "--timeout",
            "10",
        ]));
    let results = class.path().with_file_name(format!(
        "{}-results",
        class.path().file_name().unwrap().to_string_lossy()
    ));
    let _cleanup = RemoveOnDrop(results.clone());
    let csv = std::fs::read_to_string(results.join("class-summary.csv")).unwrap();
    assert_eq!(out.status.code(), Some(0), "{csv}\n{}", text(&out.stderr));
    for who in ["alice", "mallory"] {
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(results.join(who).join("ipclab-report.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(v["score"], v["max_score"], "{who}: {}", v["checks"]);
    }
    Clean::new("ipclabg").check();
}

#[test]
fn grade_class_bad_usage_is_exit_2() {
    let _forks = common::fork_guard();
    let empty = tempfile::tempdir().unwrap();
    for (args, what) in [
        (vec!["grade", "all", "--submissions", "/tmp"], "one lab"),
        (
            vec!["grade", "2", "--submissions", "/nonexistent"],
            "not a directory",
        ),
        (
            vec![
                "grade",
                "2",
                "--submissions",
                empty.path().to_str().unwrap(),
            ],
            "no subdirectory",
        ),
        (
            vec!["grade", "2", "--submissions", "/tmp", "--impl", "x"],
            "exclude each other",
        ),
        (
            vec!["grade", "2", "--submissions", "/tmp", "--jobs", "0"],
            "bad --jobs 0",
        ),
        (vec!["grade", "2", "--uid", "0"], "never runs as root"),
    ] {
        let out = run(Command::new(bin("ipclab")).args(&args));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(what), "{args:?}: {err}");
    }
    // Nothing half-made: no results directory beside the empty class.
    let results = format!("{}-results", empty.path().display());
    assert!(!Path::new(&results).exists(), "{results} was left behind");
}
