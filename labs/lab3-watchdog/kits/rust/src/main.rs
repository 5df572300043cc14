//! Lab 3 starter: a watchdog that starts its servers, reaps and restarts them, detects hangs,
//! and stops them in order.
//!
//! The lab text: labs/lab3-watchdog/README.md (the grading contract is at its end).
//! Run it:   cargo run -- --secondaries 2 --heartbeat-ms 50 --hang-ms 400 --events ev.jsonl --dir /tmp
//! Grade it: make grade
//! The servers here are stand-ins: forked children that write one byte per heartbeat period on
//! their own pipe, the watchdog's control channel. Do the TODOs in order.
#![allow(unused_imports, unused_variables, unused_mut, unreachable_code, dead_code)]

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, pipe, ForkResult, Pid};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

/// Set by the signal handlers, read by the loop (a handler does nothing else but wake it).
static CHLD: AtomicBool = AtomicBool::new(false);
static TERM: AtomicBool = AtomicBool::new(false);
/// The self-pipe's write end, for the handlers.
static WAKE: AtomicI32 = AtomicI32::new(-1);

fn todo(tag: &str, what: &str) -> ! {
    eprintln!("TODO({tag}) not done: {what} (see README.md)");
    std::process::exit(1)
}

fn now_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // Safety: clock_gettime fills the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGTERM {
        TERM.store(true, Ordering::SeqCst);
    } else {
        CHLD.store(true, Ordering::SeqCst);
    }
    // Safety: write(2) is async-signal-safe; a full pipe means a wake-up is pending anyway.
    unsafe { libc::write(WAKE.load(Ordering::SeqCst), b"x".as_ptr().cast(), 1) };
}

struct Server {
    role: String,
    pid: Pid,
    /// The heartbeat pipe's read end (non-blocking).
    fd: OwnedFd,
    last: u64,
}

struct Watchdog {
    events: File,
    period_ms: u64,
    servers: Vec<Option<Server>>,
}

impl Watchdog {
    /// One JSON line per event (the contract's format).
    fn log(&mut self, event: &str, role: &str, pid: Pid, status: Option<i32>) {
        let status = status.map(|s| format!(",\"status\":{s}")).unwrap_or_default();
        let _ = writeln!(
            self.events,
            "{{\"ts_ms\":{},\"event\":\"{event}\",\"role\":\"{role}\",\"pid\":{pid}{status}}}",
            now_ms()
        );
    }

    /// fork server `i` (role given); the child beats on a pipe every period until killed.
    fn start(&mut self, i: usize, role: String) {
        // TODO(lab3.2): pipe + fork (unsafe: one thread) with SIGTERM blocked across the fork; the child restores SIGTERM/SIGCHLD to SigDfl, unblocks SIGTERM and writes a byte every period (_exit on error); the parent unblocks SIGTERM, makes the read end non-blocking, keeps servers[i] and logs "start" | fr: pipe + fork avec SIGTERM bloqué pendant le fork ; l'enfant remet SIGTERM/SIGCHLD par défaut, débloque SIGTERM et écrit un octet par période (_exit en cas d'erreur) ; le parent débloque SIGTERM, rend le bout de lecture non bloquant, garde servers[i] et journalise « start »
        todo("lab3.2", "start a server");
        // END TODO(lab3.2)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.windows(2)
            .find(|w| w[0] == name)
            .map(|w| w[1].clone())
            .unwrap_or_else(|| {
                eprintln!("usage: lab3 --secondaries K --heartbeat-ms P --hang-ms T --events PATH --dir DIR");
                std::process::exit(2)
            })
    };
    let k: usize = arg("--secondaries").parse().unwrap_or(0);
    let period_ms: u64 = arg("--heartbeat-ms").parse().unwrap_or(0);
    let hang_ms: u64 = arg("--hang-ms").parse().unwrap_or(0);
    let events = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(arg("--events"))
        .unwrap_or_else(|e| {
            eprintln!("--events: {e}");
            std::process::exit(2)
        });
    let mut w = Watchdog { events, period_ms, servers: (0..=k).map(|_| None).collect() };
    let role = |i: usize| if i == 0 { "main".to_string() } else { format!("secondary-{i}") };
    // TODO(lab3.1): a self-pipe (pipe, both ends O_NONBLOCK), its write end's fd in WAKE, and sigaction(SIGCHLD) and sigaction(SIGTERM) with on_signal, SA_RESTART | fr: un auto-tube (pipe, deux bouts O_NONBLOCK), son fd d'écriture dans WAKE, et sigaction(SIGCHLD), sigaction(SIGTERM) avec on_signal, SA_RESTART
    let (wake_r, wake_w): (OwnedFd, OwnedFd) = todo("lab3.1", "signals into a self-pipe");
    // END TODO(lab3.1)
    for i in 0..=k {
        w.start(i, role(i));
    }
    while !TERM.load(Ordering::SeqCst) {
        // TODO(lab3.3): poll wake_r and every heartbeat fd (libc::poll, timeout one period); drain wake_r; a byte from a server sets its last = now_ms() | fr: poll sur wake_r et chaque fd de battements (un période de délai) ; vider wake_r ; un octet d'un serveur met son last à now_ms()
        todo("lab3.3", "the poll loop");
        // END TODO(lab3.3)
        // TODO(lab3.4): if CHLD was set (swap it to false): waitpid(-1, WNOHANG) until StillAlive or an error; each dead server: log "exit" with its status (code, or 128 + signal), start it again | fr: si CHLD était levé : waitpid(-1, WNOHANG) jusqu'à StillAlive ou une erreur ; chaque serveur mort : journaliser « exit » et son code, le relancer
        todo("lab3.4", "reap and restart");
        // END TODO(lab3.4)
        // TODO(lab3.5): a server silent for more than hang_ms: log "hang", SIGKILL it (its SIGCHLD restarts it), reset its last | fr: un serveur muet depuis plus de hang_ms : journaliser « hang », le tuer par SIGKILL (son SIGCHLD le relance)
        todo("lab3.5", "hang detection");
        // END TODO(lab3.5)
    }
    // TODO(lab3.6): log "shutdown"; secondaries first, then main: SIGTERM + SIGCONT, waitpid, log "exit"; then the watchdog's own "exit" 0, exit 0 | fr: journaliser « shutdown » ; les secondaires d'abord, puis le principal : SIGTERM + SIGCONT, waitpid, journaliser « exit » ; puis « exit » 0 du chien de garde
    todo("lab3.6", "the orderly shutdown");
    // END TODO(lab3.6)
}
