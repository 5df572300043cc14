//! Starter kits: each fresh kit runs and fails the grader with the message of its first TODO
//! (never a crash of the grader) and scores 0; filled with the solution kept in labs/labN-name/fixtures/kit-LANG.fills, it passes.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

fn build(dir: &Path, lang: ipclab::kit::Lang, target: &Path) {
    let out = match lang {
        ipclab::kit::Lang::Python => return,
        ipclab::kit::Lang::C => run(Command::new("make").arg("main").current_dir(dir)),
        ipclab::kit::Lang::Rust => run(Command::new("cargo")
            .args(["build", "--release", "--offline", "--quiet"])
            .env("CARGO_TARGET_DIR", target)
            .current_dir(dir)),
    };
    assert!(out.status.success(), "build: {}", text(&out.stderr));
}

fn grade(dir: &Path, lab: u32, cmd: &str) -> (i32, serde_json::Value) {
    let out = run(Command::new(bin("ipclab"))
        .args([
            "grade",
            &lab.to_string(),
            "--impl",
            cmd,
            "--runs",
            "2",
            "--format",
            "json",
        ])
        .current_dir(dir));
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)));
    (out.status.code().unwrap_or(-1), v)
}

#[test]
fn kits_fail_at_their_first_todo_and_pass_once_filled() {
    let _forks = common::fork_guard();
    let top = world_dir("ipclab-kits-");
    // One target dir for every Rust kit: their dependencies (nix) are built once, not six times.
    let shared = top.path().join("target");
    for kit in ipclab::kit::kits() {
        let lang = format!("{:?}", kit.lang).to_lowercase();
        let dir = top.path().join(format!("lab{}-{lang}", kit.lab));
        let out = run(Command::new(bin("ipclab"))
            .args(["new", &kit.lab.to_string(), "--lang", &lang, "--dir"])
            .arg(&dir));
        assert!(out.status.success(), "new: {}", text(&out.stderr));
        for f in ["Makefile", "README.md", "README.fr.md"] {
            assert!(dir.join(f).exists(), "{f}");
        }
        let readme_fr = std::fs::read_to_string(dir.join("README.fr.md")).unwrap();
        assert!(readme_fr.contains(&format!("TODO(lab{}.1)", kit.lab)));
        let cmd = match kit.lang {
            ipclab::kit::Lang::Python => "/usr/bin/python3 main.py".to_string(),
            ipclab::kit::Lang::C => "./main".to_string(),
            ipclab::kit::Lang::Rust => format!("target/release/lab{}", kit.lab),
        };
        let makefile = std::fs::read_to_string(dir.join("Makefile")).unwrap();
        assert!(makefile.contains(&cmd), "{makefile}");
        // The kit works where it is, with no ipclab on PATH: its Makefile names the one that
        // made it, and prints the lab's text in either language.
        let ipclab_path = std::fs::canonicalize(bin("ipclab")).unwrap();
        assert!(
            makefile.contains(&format!("IPCLAB ?= {}", ipclab_path.display())),
            "{makefile}"
        );
        let spec = ipclab::spec::find(kit.lab).unwrap();
        for (lang_env, readme) in [("C.UTF-8", "README.md"), ("fr_FR.UTF-8", "README.fr.md")] {
            let out = run(Command::new("make")
                .args(["-s", "text"])
                .env("PATH", "/usr/bin:/bin")
                .env("LANG", lang_env)
                .current_dir(&dir));
            let want = std::fs::read_to_string(lab_dir(kit.lab).join(readme)).unwrap();
            assert_eq!(
                text(&out.stdout),
                want,
                "lab {} {lang} make text ({lang_env})",
                spec.lab.number
            );
        }

        // Fresh: it runs, stops at its first TODO, and the grader says so.
        // The kit's Makefile names its own target/; the tests build into the shared one.
        let cmd = match kit.lang {
            ipclab::kit::Lang::Rust => shared
                .join(format!("release/lab{}", kit.lab))
                .display()
                .to_string(),
            _ => cmd,
        };
        build(&dir, kit.lang, &shared);
        if kit.lab == 2 && kit.lang == ipclab::kit::Lang::Python {
            // `make grade` as the student types it, ipclab nowhere on PATH.
            let out = run(Command::new("make")
                .arg("grade")
                .env("PATH", "/usr/bin:/bin")
                .current_dir(&dir));
            let s = text(&out.stdout);
            assert!(
                s.contains("TODO(lab2.1) not done"),
                "{s}{}",
                text(&out.stderr)
            );
        }
        let (code, v) = grade(&dir, kit.lab, &cmd);
        assert_eq!(code, 1, "lab {} {lang}: {}", kit.lab, v["checks"]);
        // A program that did nothing scores nothing: no hygiene check passes vacuously.
        assert_eq!(
            v["score"], 0,
            "lab {} {lang} fresh: {}",
            kit.lab, v["checks"]
        );
        let first = format!("TODO(lab{}.1) not done", kit.lab);
        assert!(
            v["checks"].to_string().contains(&first),
            "lab {} {lang}: {}",
            kit.lab,
            v["checks"]
        );

        // Filled with the solution: it passes.
        let fills = std::fs::read_to_string(common::fixture(kit.lab, &format!("kit-{lang}.fills")))
            .unwrap();
        for (path, _) in &kit.files {
            let p = dir.join(path);
            let program = std::fs::read_to_string(&p).unwrap();
            if ipclab::kit::todos(&program).is_empty() {
                continue;
            }
            let filled =
                ipclab::kit::fill(&program, &fills).unwrap_or_else(|e| panic!("{path}: {e}"));
            let marker = format!("TODO(lab{}.", kit.lab);
            assert!(!filled.contains(&marker), "{path}: a TODO left");
            std::fs::write(&p, filled).unwrap();
        }
        build(&dir, kit.lang, &shared);
        let (code, v) = grade(&dir, kit.lab, &cmd);
        assert_eq!(code, 0, "lab {} {lang} filled: {}", kit.lab, v["checks"]);
    }
    Clean::new("ipclabg").check();
}

#[test]
fn kits_bad_input_is_exit_2_and_writes_nothing() {
    let _forks = common::fork_guard();
    let top = tempfile::tempdir().unwrap();
    let taken = top.path().join("taken");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("mine.py"), "x").unwrap();
    let fresh = top.path().join("fresh");
    for (args, what) in [
        (
            vec![
                "new",
                "7",
                "--lang",
                "rust",
                "--dir",
                fresh.to_str().unwrap(),
            ],
            "no starter for lab 7 in rust",
        ),
        (
            vec![
                "new",
                "99",
                "--lang",
                "python",
                "--dir",
                fresh.to_str().unwrap(),
            ],
            "no lab 99",
        ),
        (
            vec![
                "new",
                "2",
                "--lang",
                "python",
                "--dir",
                taken.to_str().unwrap(),
            ],
            "not empty",
        ),
        (vec!["new", "2", "--lang", "cobol"], "cobol"),
    ] {
        let out = run(Command::new(bin("ipclab")).args(&args));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(what), "{args:?}: {err}");
    }
    assert!(!fresh.exists());
    assert_eq!(std::fs::read_dir(&taken).unwrap().count(), 1);
}
