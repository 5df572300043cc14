//! Lab 6 starter: a daemon with start, stop and status.
//!
//! The lab text: labs/lab6-daemon/README.md (the grading contract is at its end).
//! Run it:   cargo run -- start --dir /tmp/d ; cargo run -- status --dir /tmp/d ; ... stop ...
//! Grade it: make grade
//! Do the TODOs in order: each one not done stops the program and says which it is.
#![allow(unused_imports, unused_variables, unused_mut, unreachable_code, dead_code)]

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::stat::{umask, Mode};
use nix::sys::wait::waitpid;
use nix::unistd::{chdir, dup2_stdin, dup2_stdout, dup2_stderr, fork, pipe, read, setsid, write, ForkResult, Pid};
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::OnceLock;

/// The pidfile's path, set before any signal can come (the handler only reads it).
static PIDFILE: OnceLock<CString> = OnceLock::new();

fn todo(tag: &str, what: &str) -> ! {
    eprintln!("TODO({tag}) not done: {what} (see README.md)");
    std::process::exit(1)
}

/// True while a daemon holds the pidfile's lock (its pid alone could be reused).
fn running(path: &str) -> bool {
    let Ok(f) = File::open(path) else { return false };
    matches!(Flock::lock(f, FlockArg::LockSharedNonblock), Err((_, nix::errno::Errno::EWOULDBLOCK)))
}

extern "C" fn on_term(_: libc::c_int) {
    // Only async-signal-safe calls: unlink(2) and _exit(2).
    if let Some(p) = PIDFILE.get() {
        unsafe { libc::unlink(p.as_ptr()) };
    }
    unsafe { libc::_exit(0) }
}

/// The daemon itself, after the double fork: never returns.
fn daemon(path: &str, ready_w: OwnedFd) -> ! {
    // TODO(lab6.3): umask 0, chdir "/", fds 0-2 onto /dev/null (dup2_stdin/stdout/stderr), close every other fd but ready_w | fr: umask 0, chdir("/"), fd 0 à 2 sur /dev/null, fermer tous les autres fd sauf ready_w
    todo("lab6.3", "detach from the launcher's environment");
    // END TODO(lab6.3)
    // TODO(lab6.4): open the pidfile (create, 0600), Flock::lock it (LockExclusiveNonblock), write your pid; keep the lock alive | fr: ouvrir le fichier de pid, le verrouiller (Flock::lock, LockExclusiveNonblock), y écrire son pid ; garder le verrou
    let pidfile: Flock<File> = todo("lab6.4", "the locked pidfile");
    // END TODO(lab6.4)
    // TODO(lab6.5): sigaction(SIGTERM, on_term) (unsafe); write "ok" on ready_w, drop it; then wait for signals forever (nix::unistd::pause) | fr: sigaction(SIGTERM, on_term) ; écrire « ok » sur ready_w, le fermer ; puis attendre les signaux pour toujours
    todo("lab6.5", "SIGTERM handling, readiness");
    // END TODO(lab6.5)
}

fn start(path: &str) -> i32 {
    if running(path) {
        eprintln!("already running");
        return 1;
    }
    let (ready_r, ready_w) = pipe().expect("pipe");
    // TODO(lab6.1): fork (unsafe: one thread); the child drops ready_r, setsid(), forks again (the middle process exits 0 at once), and the grandchild calls daemon(path, ready_w) | fr: fork ; l'enfant ferme ready_r, setsid(), fork encore (l'intermédiaire sort aussitôt), et le petit-enfant appelle daemon(path, ready_w)
    let middle: Pid = todo("lab6.1", "the double fork");
    // END TODO(lab6.1)
    // TODO(lab6.2): waitpid the middle process, drop ready_w, read "ok" from ready_r; print "started" and return 0 (else 1) | fr: attendre l'intermédiaire (waitpid), fermer ready_w, lire « ok » sur ready_r ; afficher « started » et renvoyer 0 (sinon 1)
    todo("lab6.2", "the launcher waits for readiness");
    // END TODO(lab6.2)
}

fn stop(path: &str) -> i32 {
    if !running(path) {
        println!("not running");
        return 0;
    }
    // TODO(lab6.6): read the daemon's pid, pidfd_open it (libc::syscall(libc::SYS_pidfd_open, pid, 0)), kill SIGTERM, poll the pidfd until it has exited (10 s at most), return 0 | fr: lire le pid du démon, pidfd_open, SIGTERM, poll sur le pidfd jusqu'à sa fin, renvoyer 0
    todo("lab6.6", "stop the daemon and wait for its end");
    // END TODO(lab6.6)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (action, dir) = match args.as_slice() {
        [_, action, flag, dir] if flag == "--dir" => (action.clone(), dir.clone()),
        _ => {
            eprintln!("usage: lab6 start|stop|status --dir DIR");
            std::process::exit(2)
        }
    };
    let path = format!("{dir}/daemon.pid");
    let _ = PIDFILE.set(CString::new(path.clone()).expect("path"));
    std::process::exit(match action.as_str() {
        "start" => start(&path),
        "stop" => stop(&path),
        "status" => if running(&path) { 0 } else { 3 },
        other => {
            eprintln!("unknown action {other}");
            2
        }
    })
}
