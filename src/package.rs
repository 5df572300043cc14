//! `ipclab package gradescope|classroom N`: the grader packed for the graders people already
//! use. Both carry the ipclab binary (and the lab's supervisor, for lab 4) statically linked, so
//! the grading image needs no Rust toolchain; both find a submission's entry point by the
//! convention of `ipclab grade --submissions` (run, main.py, main.c).

use crate::error::{Error, Result};
use crate::spec::{self, Spec};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// An autograder zip: setup.sh, run_autograder, bin/.
    Gradescope,
    /// A GitHub Classroom workflow and the binaries it runs.
    Classroom,
}

pub struct Options {
    pub target: Target,
    pub lab: u32,
    /// The zip (Gradescope) or the directory to write into (Classroom).
    pub output: Option<PathBuf>,
    /// Where the statically linked binaries are (default: beside this ipclab).
    pub bin_dir: Option<PathBuf>,
    pub runs: u32,
    /// Tests only: accept dynamically linked binaries (the scripts are what is tested).
    pub allow_dynamic: bool,
}

/// True when the ELF file has no program interpreter (PT_INTERP): it needs no dynamic loader.
pub fn is_static(path: &Path) -> Result<bool> {
    let b = std::fs::read(path).map_err(|e| Error::io(&e, "read", path.display()))?;
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 {
        return Err(Error::usage(format!(
            "{}: not a 64-bit ELF executable",
            path.display()
        )));
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u64_at = |o: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[o..o + 8]);
        u64::from_le_bytes(a) as usize
    };
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let o = phoff.saturating_add(i.saturating_mul(phentsize));
        if o.saturating_add(4) > b.len() {
            break;
        }
        if u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) == 3 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The binaries a lab's grading needs.
fn binaries(s: &Spec) -> Vec<String> {
    let mut v = vec!["ipclab".to_string()];
    if let Some(sup) = s.contract.as_ref().and_then(|c| c.supervisor.clone()) {
        v.push(sup);
    }
    v
}

fn collect(o: &Options, s: &Spec) -> Result<Vec<(String, Vec<u8>)>> {
    let dir = match &o.bin_dir {
        Some(d) => d.clone(),
        None => crate::process::sibling_binary("ipclab")?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    let mut out = Vec::new();
    for b in binaries(s) {
        let p = dir.join(&b);
        if !p.is_file() {
            return Err(Error::usage(format!(
                "{}: missing (build it with `make static`)",
                p.display()
            )));
        }
        if !o.allow_dynamic && !is_static(&p)? {
            return Err(Error::usage(format!(
                "{} is dynamically linked: the grading image may lack its libraries; build with `make static` and pass --bin-dir target/x86_64-unknown-linux-gnu/release",
                p.display()
            )));
        }
        out.push((
            b,
            std::fs::read(&p).map_err(|e| Error::io(&e, "read", p.display()))?,
        ));
    }
    Ok(out)
}

/// Shell that sets CMD from the submission in the current directory, or writes why not to
/// $WHY and sets CMD empty. Shared by both targets.
const ENTRY_SH: &str = r#"# Entry point, first found wins (as `ipclab grade --submissions`): run, main.py, main.c.
CMD=""
if [ -f run ]; then
    chmod +x run
    CMD="./run"
elif [ -f main.py ]; then
    CMD="/usr/bin/python3 main.py"
elif [ -f main.c ]; then
    mkdir -p .ipclab-build
    if cc -O2 -Wall -o .ipclab-build/main ./*.c 2> .ipclab-build/compile.txt; then
        CMD="$PWD/.ipclab-build/main"
    else
        WHY="compile error:
$(head -c 3000 .ipclab-build/compile.txt)"
    fi
else
    WHY="no entry point: submit a run executable, main.py or main.c"
fi
"#;

fn setup_sh() -> String {
    r#"#!/bin/sh
# Gradescope runs this once, as root, when it builds the autograder image (Ubuntu): the tools
# the grader and the submissions need. The ipclab binaries are static: no Rust toolchain.
set -eu
need=""
command -v python3 >/dev/null 2>&1 || need="$need python3"
command -v cc >/dev/null 2>&1 || need="$need gcc libc6-dev"
command -v setpriv >/dev/null 2>&1 || need="$need util-linux"
command -v ps >/dev/null 2>&1 || need="$need procps"
if [ -n "$need" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need
fi
chmod 755 "$(dirname "$0")"/bin/*
"#
    .to_string()
}

fn run_autograder(lab: u32, runs: u32) -> String {
    format!(
        r#"#!/bin/sh
# Gradescope runs this for each submission, as root: the submission's entry point is found and
# graded by ipclab (in its box: a leased uid, its own namespaces, tmpfs and cgroup; see the
# README's "The box"), and results.json written. AUTOGRADER_ROOT lets a test run it elsewhere.
set -u
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
BIN="$ROOT/source/bin"
RESULTS="$ROOT/results/results.json"
mkdir -p "$ROOT/results"
# A copy the grading uid can read, whatever the submission directory's mode.
WORK=$(mktemp -d /tmp/ipclab-submission-XXXXXX)
cp -R "$ROOT/submission/." "$WORK/"
chmod -R a+rX "$WORK"
cd "$WORK"
WHY=""
{entry}
if [ -z "$CMD" ]; then
    python3 - "$RESULTS" "$WHY" <<'PY'
import json, sys
json.dump({{"score": 0, "output": sys.argv[2]}}, open(sys.argv[1], "w"))
PY
    rm -rf "$WORK"
    exit 0
fi
chmod -R a+rX "$WORK"
"$BIN/ipclab" grade {lab} --impl "$CMD" --runs {runs} --format gradescope --output "$RESULTS" 2> "$WORK/.ipclab-build-stderr"
code=$?
if [ "$code" -ge 2 ]; then
    python3 - "$RESULTS" "$code" "$WORK/.ipclab-build-stderr" <<'PY'
import json, sys
err = open(sys.argv[3]).read()[-3000:]
json.dump({{"score": 0, "output": "the grader could not run this submission (exit %s):\n%s" % (sys.argv[2], err)}}, open(sys.argv[1], "w"))
PY
fi
rm -rf "$WORK"
exit 0
"#,
        entry = ENTRY_SH
    )
}

fn write_zip(path: &Path, files: &[(String, Vec<u8>, u32)]) -> Result<()> {
    let f = std::fs::File::create(path).map_err(|e| Error::io(&e, "create", path.display()))?;
    let mut z = zip::ZipWriter::new(f);
    for (name, data, mode) in files {
        // Scripts deflated; binaries stored: deflating tens of MB costs more than it saves.
        let method = if name.starts_with("bin/") {
            zip::CompressionMethod::Stored
        } else {
            zip::CompressionMethod::Deflated
        };
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(method)
            .unix_permissions(*mode);
        z.start_file(name.as_str(), opts)
            .map_err(|e| Error::runtime(format!("{}: {e}", path.display())))?;
        z.write_all(data)
            .map_err(|e| Error::io(&e, "write", path.display()))?;
    }
    z.finish()
        .map_err(|e| Error::runtime(format!("{}: {e}", path.display())))?;
    Ok(())
}

fn classroom_workflow(s: &Spec) -> Result<String> {
    let c = s
        .contract
        .as_ref()
        .ok_or_else(|| Error::usage(format!("lab {} has no grading contract", s.lab.number)))?;
    let n = s.lab.number;
    let mut steps = String::new();
    let mut runners = Vec::new();
    for (check, points) in &c.points {
        let id = check.replace('-', "_");
        runners.push(id.clone());
        steps.push_str(&format!(
            r#"      - name: "{check}"
        id: {id}
        uses: classroom-resources/autograding-command-grader@v1
        with:
          test-name: "{check}"
          command: python3 .github/ipclab/check.py ipclab-report.json {check}
          timeout: 1
          max-score: {points}
"#
        ));
    }
    let env: Vec<String> = runners
        .iter()
        .map(|r| {
            format!(
                "          {}_RESULTS: \"${{{{steps.{r}.outputs.result}}}}\"",
                r.to_uppercase()
            )
        })
        .collect();
    Ok(format!(
        r#"# GitHub Classroom autograding for lab {n} (written by `ipclab package classroom {n}`).
# The grader runs once; each check is then a command-grader step worth its points (exit 0 =
# full points), which the Classroom reporter adds up. JUnit goes up as an artifact.
name: Autograding lab {n}
on:
  push:
  workflow_dispatch:
permissions:
  checks: write
  actions: read
  contents: read
jobs:
  grade:
    runs-on: ubuntu-latest
    timeout-minutes: 15
    steps:
      - uses: actions/checkout@v4
      - name: Tools the grader needs
        run: sudo apt-get update -qq && sudo apt-get install -y -qq strace python3 gcc util-linux
      - name: Grade lab {n} with ipclab
        run: sudo sh .github/ipclab/grade.sh
{steps}      - name: JUnit report
        if: always()
        uses: actions/upload-artifact@v4
        with:
          name: ipclab-junit
          path: ipclab-junit.xml
      - name: Autograding reporter
        if: always()
        uses: classroom-resources/autograding-grading-reporter@v1
        env:
{env}
        with:
          runners: {runners}
"#,
        env = env.join("\n"),
        runners = runners.join(","),
    ))
}

fn grade_sh(lab: u32, runs: u32, bins: &[String]) -> String {
    let chmod: Vec<String> = bins.iter().map(|b| format!("\"$BIN\"/{b}")).collect();
    let chmod = chmod.join(" ");
    format!(
        r#"#!/bin/sh
# Grades the repository's submission once: ipclab-report.json (read by check.py, one step per
# check) and ipclab-junit.xml. Run as root (sudo) so the grader can build its box.
set -u
BIN="$(cd "$(dirname "$0")" && pwd)"
TOP="$PWD"
chmod 755 {chmod} 2>/dev/null
WORK=$(mktemp -d /tmp/ipclab-submission-XXXXXX)
cp -R "$TOP/." "$WORK/"
rm -rf "$WORK/.git"
chmod -R a+rX "$WORK"
cd "$WORK"
WHY=""
{entry}
if [ -z "$CMD" ]; then
    echo "$WHY" >&2
    echo '{{"passed": false, "checks": [], "error": "not graded"}}' > "$TOP/ipclab-report.json"
    exit 0
fi
chmod -R a+rX "$WORK"
"$BIN/ipclab" grade {lab} --impl "$CMD" --runs {runs} --format json --output "$TOP/ipclab-report.json" --format junit --output "$TOP/ipclab-junit.xml" --format text
rm -rf "$WORK"
exit 0
"#,
        entry = ENTRY_SH
    )
}

const CHECK_PY: &str = r#"#!/usr/bin/env python3
"""Exit 0 when CHECK passed in ipclab's JSON report (one Classroom command-grader step each)."""
import json, sys
report, check = sys.argv[1], sys.argv[2]
try:
    checks = json.load(open(report)).get("checks", [])
except (OSError, ValueError) as e:
    sys.exit(f"no report: {e}")
for c in checks:
    if c.get("name") == check:
        print(("passed: " if c.get("passed") else "FAILED: ") + c.get("detail", ""))
        sys.exit(0 if c.get("passed") else 1)
sys.exit(f"{check}: not in the report (the submission was not graded)")
"#;

pub fn package(o: &Options) -> Result<i32> {
    let s = spec::find(o.lab)?;
    if s.contract.is_none() {
        return Err(Error::usage(format!(
            "lab {} has no grading contract to package",
            o.lab
        )));
    }
    if o.runs == 0 || o.runs > 100 {
        return Err(Error::usage(format!("bad --runs {}: 1..=100", o.runs)));
    }
    let bins = collect(o, &s)?;
    match o.target {
        Target::Gradescope => {
            let out = o
                .output
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("ipclab-gradescope-lab{}.zip", o.lab)));
            let mut files: Vec<(String, Vec<u8>, u32)> = vec![
                ("setup.sh".into(), setup_sh().into_bytes(), 0o755),
                (
                    "run_autograder".into(),
                    run_autograder(o.lab, o.runs).into_bytes(),
                    0o755,
                ),
            ];
            for (name, data) in bins {
                files.push((format!("bin/{name}"), data, 0o755));
            }
            write_zip(&out, &files)?;
            println!(
                "wrote {} (upload it as the autograder of lab {})",
                out.display(),
                o.lab
            );
        }
        Target::Classroom => {
            let top = o.output.clone().unwrap_or_else(|| PathBuf::from("."));
            let wf = top.join(".github/workflows");
            let tools = top.join(".github/ipclab");
            for d in [&wf, &tools] {
                std::fs::create_dir_all(d).map_err(|e| Error::io(&e, "mkdir", d.display()))?;
            }
            let mut files: Vec<(PathBuf, Vec<u8>, u32)> = vec![
                (
                    wf.join("classroom.yml"),
                    classroom_workflow(&s)?.into_bytes(),
                    0o644,
                ),
                (
                    tools.join("grade.sh"),
                    grade_sh(o.lab, o.runs, &binaries(&s)).into_bytes(),
                    0o755,
                ),
                (tools.join("check.py"), CHECK_PY.as_bytes().to_vec(), 0o755),
            ];
            for (name, data) in bins {
                files.push((tools.join(name), data, 0o755));
            }
            for (p, data, mode) in files {
                std::fs::write(&p, data).map_err(|e| Error::io(&e, "write", p.display()))?;
                std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode))
                    .map_err(|e| Error::io(&e, "chmod", p.display()))?;
            }
            println!(
                "wrote {} and {} (commit both into the assignment's template repository)",
                wf.join("classroom.yml").display(),
                tools.display()
            );
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `cc -static` program has no PT_INTERP; /bin/sh (dynamic) has one.
    #[test]
    fn static_binaries_are_told_apart() {
        let _forks = crate::FORK_MTX.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("t.c");
        std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
        let exe = dir.path().join("t");
        let ok = std::process::Command::new("cc")
            .args(["-static", "-o"])
            .arg(&exe)
            .arg(&src)
            .status()
            .unwrap();
        assert!(ok.success());
        assert!(is_static(&exe).unwrap());
        assert!(!is_static(Path::new("/bin/sh")).unwrap());
        assert_eq!(is_static(&src).unwrap_err().code(), 2);
    }
}
