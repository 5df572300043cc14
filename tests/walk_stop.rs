//! Walkthroughs stopped part-way, as students stop them: stdout closed (`ipclab lab 3 | head`)
//! or Ctrl-C (SIGINT to the whole process group), at several points of every lab. Each must kill
//! and reap what it started, unlink what it made, remove its temporary files, and exit 1 (EPIPE)
//! or 130 (SIGINT). This binary is a subreaper (its own binary: that is process-wide state), so
//! whatever a walkthrough orphans comes here and is seen.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// How a run is cut.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// The reader leaves after this many lines.
    Epipe(usize),
    /// SIGINT to the group after this many lines.
    Sigint(usize),
}

/// The smallest pipe: the walkthrough can be at most this far ahead of its reader, so a cut with
/// more output than this (and our read buffer) still to come finds it running.
const PIPE: usize = 4096;
const READ_BUF: usize = 256;

fn run_cut(n: u32, cut: Cut, tmp: &std::path::Path) -> (i32, String) {
    let mut child = Command::new(bin("ipclab"))
        .args(["lab", &n.to_string()])
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    nix::fcntl::fcntl(
        stdout.as_fd(),
        nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE as i32),
    )
    .unwrap();
    let mut r = BufReader::with_capacity(READ_BUF, stdout);
    let k = match cut {
        Cut::Epipe(k) | Cut::Sigint(k) => k,
    };
    let mut line = String::new();
    for _ in 0..k {
        line.clear();
        assert!(
            r.read_line(&mut line).unwrap() > 0,
            "lab {n}: output ended before line {k}"
        );
    }
    match cut {
        Cut::Epipe(_) => drop(r),
        Cut::Sigint(_) => {
            let pgid = nix::unistd::Pid::from_raw(-(child.id() as i32));
            nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGINT).unwrap();
            drain(r);
        }
    }
    child.stdout = None;
    let out = finish(child);
    (out.status.code().unwrap_or(-1), text(&out.stderr))
}

/// Every lab, cut at four points by each of EPIPE and SIGINT: exit 1 or 130, and nothing left
/// (process, zombie, shm object, temporary file).
#[test]
fn walkthroughs_stop_clean_on_epipe_and_sigint() {
    let _forks = common::fork_guard();
    let tmp = tempfile::tempdir().unwrap();
    // A full run of each first, to know where its output can be cut (not yet a subreaper: lab
    // 5 shows an orphan adopted by whoever is above the walkthrough).
    let mut sizes = Vec::new();
    for spec in ipclab::spec::all().unwrap() {
        let n = spec.lab.number;
        let out = run(Command::new(bin("ipclab"))
            .args(["lab", &n.to_string()])
            .env("TMPDIR", tmp.path()));
        assert_eq!(out.status.code(), Some(0), "lab {n}: {}", text(&out.stderr));
        let lines: Vec<usize> = text(&out.stdout).lines().map(|l| l.len() + 1).collect();
        sizes.push((n, lines));
    }
    ipclab::process::set_child_subreaper().unwrap();
    for (n, lines) in sizes {
        let total: usize = lines.iter().sum();
        let room = total.saturating_sub(PIPE + READ_BUF + 512);
        assert!(
            room > 0,
            "lab {n}: {total} bytes of output, too short to cut"
        );
        for frac in [0.1, 0.35, 0.6, 0.9] {
            // The line at which `frac` of the room has been read.
            let mut upto = 0;
            let k = lines
                .iter()
                .take_while(|l| {
                    upto += **l;
                    (upto as f64) < frac * room as f64
                })
                .count()
                .max(1);
            for cut in [Cut::Epipe(k), Cut::Sigint(k)] {
                let (code, err) = run_cut(n, cut, tmp.path());
                let want = match cut {
                    Cut::Epipe(_) => 1,
                    Cut::Sigint(_) => 130,
                };
                assert_eq!(code, want, "lab {n} {cut:?}: {err}");
                assert!(
                    err.contains("walkthrough stopped"),
                    "lab {n} {cut:?}: {err}"
                );
                eprintln!("lab {n} {cut:?}: exit {code}; {}", err.trim());
                Clean::new("ipclab").check();
                let left = dir_entries(tmp.path());
                assert!(left.is_empty(), "lab {n} {cut:?}: left in TMPDIR: {left:?}");
            }
        }
    }
}
