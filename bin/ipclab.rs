//! ipclab — the course's command line: list the labs, run a lab's narrated walkthrough, check
//! the machine (doctor), remove what an interrupted run left (clean).
//!
//! Syscalls: those of the reference programs it runs; itself prctl(PR_SET_CHILD_SUBREAPER) and
//! wait4 on the orphans it adopts during a walkthrough.
//!
//! Try: target/debug/ipclab list ; target/debug/ipclab lab 2
//!
//! strace shows:
//!   prctl(PR_SET_CHILD_SUBREAPER, 1) = 0
//!   wait4(-1, NULL, WNOHANG, NULL) = -1 ECHILD (No child processes)
//!   exit_group(0) = ?

use clap::{Parser, Subcommand};
use ipclab::error::{exit_with, Error, Result};
use std::os::unix::fs::MetadataExt;

#[derive(Parser)]
#[command(name = "ipclab", version, about = "Labs for low-level Unix IPC")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The labs, with the questions they answer.
    List,
    /// Run lab N's narrated walkthrough.
    Lab {
        n: u32,
        /// Pause before each step until Enter.
        #[arg(long)]
        step: bool,
    },
    /// What works on this machine: /dev/shm, FIFOs, subreaper, pidfd, strace. Exit 3 if a lab cannot run.
    Doctor,
    /// Remove this user's ipclab objects whose creator is gone: /dev/shm/ipclab-UID-PID-*.
    Clean,
}

fn main() {
    let cli: Cli = ipclab::args::parse();
    let result = match cli.cmd {
        Cmd::List => list(),
        Cmd::Lab { n, step } => ipclab::walkthrough::run(n, step),
        Cmd::Doctor => Ok(doctor()),
        Cmd::Clean => Ok(clean()),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => exit_with(&e),
    }
}

fn list() -> Result<i32> {
    for s in ipclab::spec::all()? {
        println!("lab {}  {:<9} {}", s.lab.number, s.lab.name, s.lab.title);
        println!("        programs: {}", s.lab.binaries.join(", "));
        for q in &s.lab.questions {
            println!("        {q}");
        }
    }
    Ok(0)
}

fn doctor() -> i32 {
    let findings = ipclab::doctor::examine();
    for f in &findings {
        println!("{:<4} {}", f.level, f.what);
    }
    if findings.iter().any(|f| f.level == "FAIL") {
        3
    } else {
        0
    }
}

/// Only names this toolkit makes (`ipclab-<uid>-<pid>-<hex>`), only ours, only if that pid is gone.
fn clean() -> i32 {
    let uid = nix::unistd::getuid().as_raw();
    let prefix = format!("ipclab-{uid}-");
    let mut removed = 0;
    for name in ipclab::inspect::shm_objects(&prefix) {
        let path = format!("/dev/shm/{name}");
        let pid: Option<i32> = name[prefix.len()..]
            .split('-')
            .next()
            .and_then(|p| p.parse().ok());
        let ours = std::fs::metadata(&path).is_ok_and(|m| m.uid() == uid);
        let Some(pid) = pid else { continue };
        if !ours || ipclab::inspect::info(pid).is_some() {
            continue;
        }
        match nix::sys::mman::shm_unlink(format!("/{name}").as_str()) {
            Ok(()) => {
                println!("removed {path} (creator {pid} is gone)");
                removed += 1;
            }
            Err(e) => eprintln!("{}", Error::sys(e, "shm_unlink", &path)),
        }
    }
    println!("clean: {removed} object(s) removed");
    0
}
