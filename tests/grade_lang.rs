//! The grader in French (`--lang fr`, or LANG=fr_*): for a failing program of each lab, the same
//! checks with the same verdicts as in English, every message in French, and the names, verdict
//! words and score line scripts read unchanged.

mod common;
use common::*;
use serde_json::Value;
use std::process::Command;

/// (lab, fixture file, variant, extra grade arguments): faults whose verdict does not depend on
/// timing, so an English and a French run of one seed judge alike.
const CASES: &[(u32, &str, &str, &[&str])] = &[
    (1, "shm.py", "leak", &[]),
    (2, "pingpong.py", "open-order", &["--timeout", "3"]),
    (3, "watchdog.py", "zombies", &[]),
    (4, "servers.py", "keep-open", &[]),
    (5, "reaper.py", "wrong-status", &[]),
    (6, "daemon.py", "no-setsid", &[]),
    (8, "sockets.py", "tcp-never-closes", &["--timeout", "3"]),
    (9, "finger.py", "shell", &["--timeout", "3"]),
];

/// English words no French message should hold once quoted program output is set aside.
const ENGLISH: &[&str] = &[
    " the ", " was ", " were ", " never ", " must ", " not ", " with ", " and ", " after ",
];

fn grade(lab: u32, args: &[&str], env: Option<(&str, &str)>) -> (Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.txt");
    let mut cmd = Command::new(bin("ipclab"));
    cmd.args([
        "grade",
        &lab.to_string(),
        "--seed",
        "77",
        "--format",
        "text",
        "--output",
    ])
    .arg(&report)
    .args(["--format", "json"])
    .args(args)
    .env_remove("LC_ALL")
    .env_remove("LC_MESSAGES")
    .env("LANG", "C.UTF-8");
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)));
    (v, std::fs::read_to_string(&report).unwrap_or_default())
}

/// The message with what programs printed (quoted "..." and `...`) removed.
fn own_words(detail: &str) -> String {
    let mut s = String::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for ch in detail.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if ch == '\\' {
                    escaped = true;
                } else if ch == q {
                    quote = None;
                }
            }
            None if ch == '"' || ch == '`' => quote = Some(ch),
            None => s.push(ch),
        }
    }
    format!(" {s} ")
}

fn verdicts(v: &Value) -> Vec<(String, bool, bool)> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["passed"].as_bool().unwrap(),
                c["skipped"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn french_reports_say_the_same_in_french() {
    let _forks = fork_guard();
    for (lab, file, variant, extra) in CASES {
        let cmd = format!(
            "/usr/bin/python3 {} {variant}",
            fixture(*lab, file).display()
        );
        let args = [&["--impl", cmd.as_str()], *extra].concat();
        let (en, _) = grade(*lab, &args, None);
        let (fr, fr_text) = grade(*lab, &[&args[..], &["--lang", "fr"]].concat(), None);
        let what = format!("lab {lab} {variant}");
        assert_eq!(verdicts(&en), verdicts(&fr), "{what}: {}", fr["checks"]);
        assert_eq!(en["score"], fr["score"], "{what}");
        assert!(
            verdicts(&fr).iter().any(|(_, passed, _)| !passed),
            "{what}: the fault was not found: {}",
            fr["checks"]
        );
        let en_checks = en["checks"].as_array().unwrap();
        for (e, f) in en_checks.iter().zip(fr["checks"].as_array().unwrap()) {
            let (ed, fd) = (e["detail"].as_str().unwrap(), f["detail"].as_str().unwrap());
            assert_ne!(ed, fd, "{what} {}: not translated", f["name"]);
            let words = own_words(fd);
            for w in ENGLISH {
                assert!(
                    !words.contains(w),
                    "{what} {}: English {w:?} in {fd:?}",
                    f["name"]
                );
            }
        }
        // Names, verdict words and the score line stay as scripts read them.
        for (name, passed, skipped) in verdicts(&fr) {
            let word = match (passed, skipped) {
                (true, _) => "OK",
                (false, true) => "SKIP",
                (false, false) => "FAIL",
            };
            assert!(
                fr_text.contains(&format!("== lab{lab}: {name} == {word}")),
                "{what}: {fr_text}"
            );
        }
        assert!(fr_text.contains("Score: "), "{what}: {fr_text}");
        assert!(
            fr_text.contains("transcription de la graine"),
            "{what}: {fr_text}"
        );
        let transcript = fr["runs"][0]["transcript"].as_str().unwrap_or_default();
        let t = std::fs::read_to_string(transcript).unwrap_or_default();
        assert!(
            t.contains("rejouer cette exécution : ipclab grade"),
            "{what}: {t}"
        );
        assert!(t.contains("-- vérifications"), "{what}: {t}");
    }
    Clean::new("ipclabg").check();
}

/// LANG=fr_FR.UTF-8 alone makes the messages French; --lang en overrides it.
#[test]
fn lang_environment_chooses_french_and_the_flag_wins() {
    let _forks = fork_guard();
    let cmd = format!(
        "/usr/bin/python3 {} wrong-status",
        fixture(5, "reaper.py").display()
    );
    let (fr, _) = grade(5, &["--impl", &cmd], Some(("LANG", "fr_FR.UTF-8")));
    let (en, _) = grade(
        5,
        &["--impl", &cmd, "--lang", "en"],
        Some(("LANG", "fr_FR.UTF-8")),
    );
    let detail = |v: &Value| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "protocol")
            .map(|c| c["detail"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert!(detail(&fr).contains("ligne inattendue"), "{}", detail(&fr));
    assert!(detail(&en).contains("unexpected line"), "{}", detail(&en));
    Clean::new("ipclabg").check();
}
