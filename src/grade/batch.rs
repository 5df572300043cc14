//! A class graded at once: `ipclab grade N --submissions DIR [--jobs J]`. Each subdirectory of
//! DIR is one student's submission; its entry command is found by convention (`run`, `main.py`,
//! `main.c`, `Cargo.toml`), built first where needed, then graded by its own `ipclab grade`
//! process — its own subreaper, scratch directories and pids cgroup — and, as root, under its
//! own uid per job slot, so that one submission's fork bomb or stray kill cannot reach another's.
//! Reports go beside each submission; the class summary (CSV, JSON) into DIR.

use crate::error::{Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct BatchOptions {
    pub lab: u32,
    pub dir: PathBuf,
    pub jobs: usize,
    pub runs: u32,
    pub seed: u64,
    pub timeout: Option<f64>,
}

/// One student's line in the class summary.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub student: String,
    pub score: u32,
    pub max_score: u32,
    pub passed: bool,
    /// Checks that failed in at least one run.
    pub failing: Vec<String>,
    /// Checks that passed in some runs only: "name k/K passed".
    pub flaky: Vec<String>,
    /// Why it could not be graded (no entry point, compile error, harness failure).
    pub error: Option<String>,
    pub entry: String,
}

/// The first uid of the job slots (root only): 61000 + slot.
pub const SLOT_UID_BASE: u32 = 61000;

const REPORT: &str = "ipclab-report";

/// Finds the entry point and builds it. Ok(command) or Err(why it cannot be graded).
fn prepare(sub: &Path, uid: Option<u32>) -> std::result::Result<(String, String), String> {
    let has = |f: &str| sub.join(f).is_file();
    if has("run") {
        return Ok(("./run".into(), "run".into()));
    }
    if has("main.py") {
        return Ok(("/usr/bin/python3 main.py".into(), "main.py".into()));
    }
    let build = sub.join(".ipclab-build");
    if has("main.c") {
        let _ = std::fs::create_dir_all(&build);
        chown_tree(&build, uid);
        let mut sources: Vec<PathBuf> = std::fs::read_dir(sub)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "c"))
            .collect();
        sources.sort();
        let exe = build.join("main");
        // Compiled as the slot's uid (root grading): the compiler runs nothing of the student's,
        // but it need not run as root either.
        let mut cmd = as_uid(uid, "cc");
        cmd.args(["-O2", "-Wall", "-o"])
            .arg(&exe)
            .args(&sources)
            .current_dir(sub)
            .stdin(Stdio::null());
        let out = cmd.output().map_err(|e| format!("cannot run cc: {e}"))?;
        if !out.status.success() {
            let log = String::from_utf8_lossy(&out.stderr).into_owned();
            let _ = std::fs::write(sub.join(format!("{REPORT}-compile.txt")), &log);
            let first = log
                .lines()
                .find(|l| l.contains("error"))
                .unwrap_or("")
                .trim();
            return Err(format!("compile error: {first}"));
        }
        return Ok((exe.display().to_string(), "main.c".into()));
    }
    if has("Cargo.toml") {
        // cargo runs the package's build scripts with our rights: see the README.
        let out = Command::new("cargo")
            .args(["build", "--release", "--quiet", "--offline", "--target-dir"])
            .arg(&build)
            .current_dir(sub)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !out.status.success() {
            let log = String::from_utf8_lossy(&out.stderr).into_owned();
            let _ = std::fs::write(sub.join(format!("{REPORT}-compile.txt")), &log);
            let first = log
                .lines()
                .find(|l| l.contains("error"))
                .unwrap_or("")
                .trim();
            return Err(format!("compile error: {first}"));
        }
        let exe = std::fs::read_dir(build.join("release"))
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                use std::os::unix::fs::PermissionsExt;
                p.is_file()
                    && p.metadata()
                        .is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
            })
            .ok_or("cargo built no executable")?;
        chown_tree(&build, uid);
        return Ok((exe.display().to_string(), "Cargo.toml".into()));
    }
    Err("no entry point: give a `run` executable, main.py, main.c or Cargo.toml".into())
}

fn as_uid(uid: Option<u32>, program: &str) -> Command {
    match uid {
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={u}"),
                &format!("--regid={u}"),
                "--clear-groups",
                program,
            ]);
            c
        }
        None => Command::new(program),
    }
}

fn chown_tree(p: &Path, uid: Option<u32>) {
    let Some(u) = uid else { return };
    let _ = nix::unistd::chown(p, Some(u.into()), Some(u.into()));
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            chown_tree(&e.path(), Some(u));
        }
    }
}

/// Grades one submission in its own `ipclab grade` process.
fn grade_one(o: &BatchOptions, sub: &Path, slot: usize) -> Row {
    let student = sub
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let root = nix::unistd::geteuid().is_root();
    let uid = root.then_some(SLOT_UID_BASE + slot as u32);
    let mut row = Row {
        student,
        score: 0,
        max_score: 0,
        passed: false,
        failing: Vec::new(),
        flaky: Vec::new(),
        error: None,
        entry: String::new(),
    };
    let (cmd, entry) = match prepare(sub, uid) {
        Ok(x) => x,
        Err(why) => {
            row.error = Some(why.clone());
            let _ = std::fs::write(
                sub.join(format!("{REPORT}.txt")),
                format!("not graded: {why}\n"),
            );
            return row;
        }
    };
    row.entry = entry;
    let me = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            row.error = Some(format!("cannot find ipclab: {e}"));
            return row;
        }
    };
    let json = sub.join(format!("{REPORT}.json"));
    let mut c = Command::new(me);
    c.args(["grade", &o.lab.to_string(), "--impl", &cmd])
        .args(["--runs", &o.runs.to_string(), "--seed", &o.seed.to_string()])
        .args(["--format", "json", "--output"])
        .arg(&json)
        .args(["--format", "text", "--output"])
        .arg(sub.join(format!("{REPORT}.txt")))
        .current_dir(sub)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(t) = o.timeout {
        c.args(["--timeout", &t.to_string()]);
    }
    if let Some(u) = uid {
        c.args(["--uid", &u.to_string()]);
    }
    let out = match c.output() {
        Ok(out) => out,
        Err(e) => {
            row.error = Some(format!("cannot run the grader: {e}"));
            return row;
        }
    };
    let report: Option<serde_json::Value> = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let Some(r) = report.filter(|_| matches!(out.status.code(), Some(0 | 1))) else {
        let err = String::from_utf8_lossy(&out.stderr);
        row.error = Some(format!(
            "not graded (exit {}): {}",
            out.status.code().unwrap_or(-1),
            err.lines().last().unwrap_or("").trim()
        ));
        return row;
    };
    row.score = r["score"].as_u64().unwrap_or(0) as u32;
    row.max_score = r["max_score"].as_u64().unwrap_or(0) as u32;
    row.passed = r["passed"].as_bool().unwrap_or(false);
    let runs = r["runs"].as_array().cloned().unwrap_or_default();
    for c in r["checks"].as_array().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or("").to_string();
        // A check skipped for a failed precondition is not one more fault.
        if c["passed"] == true || c["skipped"] == true {
            continue;
        }
        let ok = runs
            .iter()
            .filter(|run| {
                run["checks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|x| x["name"] == name.as_str() && x["passed"] == true)
            })
            .count();
        if ok > 0 {
            row.flaky.push(format!("{name} {ok}/{} passed", runs.len()));
        }
        row.failing.push(name);
    }
    row
}

/// The submissions in DIR: its subdirectories, by name (hidden ones skipped).
fn submissions(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut subs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(&e, "read", dir.display()).into_usage())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    subs.sort();
    if subs.is_empty() {
        return Err(Error::usage(format!(
            "--submissions {}: no subdirectory (one per student) in it",
            dir.display()
        )));
    }
    Ok(subs)
}

pub fn batch(o: &BatchOptions) -> Result<Vec<Row>> {
    if !(1..=64).contains(&o.jobs) {
        return Err(Error::usage(format!("bad --jobs {}: 1..=64", o.jobs)));
    }
    let subs = submissions(&o.dir)?;
    let total = subs.len();
    let queue: Arc<Mutex<Vec<(usize, PathBuf)>>> =
        Arc::new(Mutex::new(subs.into_iter().enumerate().rev().collect()));
    let rows: Arc<Mutex<Vec<(usize, Row)>>> = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let start = Instant::now();
    std::thread::scope(|s| {
        for slot in 0..o.jobs.min(total) {
            let (queue, rows, done) = (queue.clone(), rows.clone(), done.clone());
            s.spawn(move || loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop());
                let Some((i, sub)) = next else { break };
                let row = grade_one(o, &sub, slot);
                let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                if bar {
                    let w = 30 * n / total;
                    eprint!(
                        "\r[{}{}] {n}/{total} graded ({:.0} s) — {}: {}/{}   ",
                        "#".repeat(w),
                        " ".repeat(30 - w),
                        start.elapsed().as_secs_f64(),
                        row.student,
                        row.score,
                        row.max_score
                    );
                }
                if let Ok(mut r) = rows.lock() {
                    r.push((i, row));
                }
            });
        }
    });
    if bar {
        eprintln!();
    }
    let mut rows = Arc::try_unwrap(rows)
        .map_err(|_| Error::runtime("grading threads still hold the results"))?
        .into_inner()
        .map_err(|_| Error::runtime("a grading thread panicked"))?;
    rows.sort_by_key(|(i, _)| *i);
    Ok(rows.into_iter().map(|(_, r)| r).collect())
}

pub fn csv(rows: &[Row]) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut out = String::from("student,score,max,passed,failing_checks,flaky,error\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            q(&r.student),
            r.score,
            r.max_score,
            r.passed,
            q(&r.failing.join(" ")),
            q(&r.flaky.join("; ")),
            q(r.error.as_deref().unwrap_or(""))
        ));
    }
    out
}

pub fn text(rows: &[Row]) -> String {
    let w = rows
        .iter()
        .map(|r| r.student.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let mut out = format!("{:<w$}  score   failing\n", "student");
    for r in rows {
        let what = match &r.error {
            Some(e) => e.clone(),
            None => r.failing.join(", "),
        };
        out.push_str(&format!(
            "{:<w$}  {:>2}/{:<2}   {what}{}\n",
            r.student,
            r.score,
            r.max_score,
            if r.flaky.is_empty() {
                String::new()
            } else {
                format!(" (flaky: {})", r.flaky.join("; "))
            }
        ));
    }
    out
}
