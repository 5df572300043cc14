//! Lab 6 — daemon: how a process leaves its terminal, session and parent behind. `start` forks
//! (the launcher returns to the shell), the child calls setsid (new session, no controlling
//! terminal), forks again and exits (the daemon is not a session leader, so opening a terminal
//! can never make one its controlling terminal), then umask, chdir("/"), closes every inherited
//! fd and points 0/1/2 at /dev/null. A pidfile held with flock says "running"; SIGHUP reopens
//! the log, SIGTERM removes the pidfile and exits.
//!
//! Syscalls, in order: clone (fork), setsid, clone (fork), exit_group (middle process), umask,
//! chdir("/"), close..., openat("/dev/null"), dup2 x3, openat(D/daemon.pid, O_CREAT), flock,
//! openat(D/daemon.log, O_APPEND), poll (waiting for signals), unlink (pidfile) on SIGTERM.
//!
//! Try: target/debug/daemon start --dir /tmp/d && target/debug/daemon status --dir /tmp/d
//!
//! strace shows:
//!   setsid() = PID
//!   umask(000) = 022
//!   chdir("/") = 0
//!   flock(3, LOCK_EX|LOCK_NB) = 0
//!   --- SIGTERM {si_signo=SIGTERM, si_code=SI_USER, ...} ---
//!   unlink("DIR/daemon.pid") = 0
//!
//! Exit status as LSB init scripts: status 0 running / 3 not running; stop 0 also when not
//! running; a second start is refused (2).

use clap::{Parser, Subcommand};
use ipclab::daemon::{self, PidState, Pidfile};
use ipclab::error::{exit_with, Error, Result};
use ipclab::process::{self, tag};
use ipclab::signals::{self, SignalPipe};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Lab 6: a daemon with a pidfile, a log, SIGHUP and SIGTERM")]
struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Start the daemon (refused if one already holds the pidfile).
    Start {
        /// Directory for daemon.pid and daemon.log.
        #[arg(long)]
        dir: PathBuf,
        /// Stay attached: no fork, no setsid (for supervisors and debugging).
        #[arg(long)]
        foreground: bool,
    },
    /// Send SIGTERM and wait until the daemon has exited.
    Stop {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Exit 0 and describe the daemon if it runs, exit 3 otherwise.
    Status {
        #[arg(long)]
        dir: PathBuf,
    },
}

/// How long `stop` waits after SIGTERM before giving up (a safety net, not a handshake).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

struct Paths {
    pid: PathBuf,
    log: PathBuf,
}

fn main() {
    let args: Args = ipclab::args::parse();
    let result = match &args.action {
        Action::Start { dir, foreground } => paths(dir).and_then(|p| start(&p, *foreground)),
        Action::Stop { dir } => paths(dir).and_then(|p| stop(&p)),
        Action::Status { dir } => paths(dir).and_then(|p| status(&p)),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => exit_with(&e),
    }
}

/// The daemon runs in /, so D must be absolute: canonicalised after checking it is usable.
fn paths(dir: &Path) -> Result<Paths> {
    ipclab::fifo::check_dir(dir)?;
    let dir = dir
        .canonicalize()
        .map_err(|e| Error::io(&e, "realpath", dir.display()).into_usage())?;
    Ok(Paths {
        pid: dir.join("daemon.pid"),
        log: dir.join("daemon.log"),
    })
}

fn start(p: &Paths, foreground: bool) -> Result<i32> {
    let me = tag("launcher");
    if let PidState::Running(pid) = daemon::probe(&p.pid)? {
        return Err(Error::usage(format!(
            "daemon already running (pid {pid}, {}): refusing a second start",
            p.pid.display()
        )));
    }
    if foreground {
        return serve(p, None);
    }
    // The daemon writes "ok" or its error on the readiness pipe once it holds the pidfile: the
    // launcher's exit status then tells the truth, without guessing with a sleep.
    let answer = daemon::launch(|ready| {
        detach(p, ready);
    })?;
    match answer.strip_prefix("ok ") {
        Some(pid) => {
            println!(
                "{me} daemon {} started; log {}",
                pid.trim(),
                p.log.display()
            );
            Ok(0)
        }
        None if answer.is_empty() => Err(Error::runtime("daemon died while starting")),
        None => {
            let code = if answer.contains("already running") {
                2
            } else {
                1
            };
            Err(
                Error::runtime(answer.trim_start_matches("ERROR ").trim().to_string())
                    .with_code(code),
            )
        }
    }
}

/// Middle process: new session, second fork, exit. The grandchild becomes the daemon.
fn detach(p: &Paths, ready: OwnedFd) -> ! {
    daemon::become_daemon(&ready, &[]);
    let code = serve(p, Some(ready)).unwrap_or(1);
    // Safety: _exit from a forked process.
    unsafe { libc::_exit(code) }
}

/// One message to the launcher through the readiness pipe (stderr is /dev/null by now).
fn tell(ready: Option<&OwnedFd>, msg: &str) {
    if let Some(fd) = ready {
        // Safety: write(2) of our own buffer to a descriptor we own; a short write is fine here
        // (messages are far below PIPE_BUF, so they arrive whole).
        unsafe { libc::write(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
    }
}

/// The daemon proper: pidfile, log, then sleep in poll until a signal arrives.
fn serve(p: &Paths, ready: Option<OwnedFd>) -> Result<i32> {
    let fail = |e: Error| {
        tell(ready.as_ref(), &e.to_string());
        Err(e)
    };
    let pidfile = match Pidfile::acquire(&p.pid) {
        Ok(Ok(pf)) => pf,
        Ok(Err(pid)) => return fail(Error::usage(format!("daemon already running (pid {pid})"))),
        Err(e) => return fail(e),
    };
    let mut log = match daemon::open_log(&p.log) {
        Ok(l) => l,
        Err(e) => {
            let _ = pidfile.remove();
            return fail(e);
        }
    };
    let mut sigs = match SignalPipe::new(&[Signal::SIGHUP, Signal::SIGTERM, Signal::SIGINT]) {
        Ok(s) => s,
        Err(e) => {
            let _ = pidfile.remove();
            return fail(e);
        }
    };
    let me = tag("daemon");
    let info = ipclab::inspect::info(std::process::id() as i32);
    let (ppid, sid, tty) = info
        .map(|i| (i.ppid, i.session, i.tty_nr))
        .unwrap_or_default();
    daemon::log_line(
        &mut log,
        &format!(
            "{me} started: ppid {ppid}, sid {sid}, tty_nr {tty}, pidfile {}",
            p.pid.display()
        ),
    );
    match ready {
        Some(r) => tell(Some(&r), &format!("ok {}\n", std::process::id())),
        None => ipclab::say!("{me} started in the foreground; log {}", p.log.display()),
    }
    loop {
        for sig in sigs.wait(None)? {
            match sig {
                Signal::SIGHUP => {
                    // After logrotate renamed the file, the new name gets a fresh file.
                    match daemon::open_log(&p.log) {
                        Ok(l) => log = l,
                        Err(e) => daemon::log_line(&mut log, &format!("{me} SIGHUP: {e}")),
                    }
                    daemon::log_line(&mut log, &format!("{me} SIGHUP: log reopened"));
                }
                _ => {
                    daemon::log_line(
                        &mut log,
                        &format!("{me} {}: removing pidfile, exiting", sig.as_str()),
                    );
                    pidfile.remove()?;
                    return Ok(0);
                }
            }
        }
    }
}

fn stop(p: &Paths) -> Result<i32> {
    let me = tag("stop");
    let pid = match daemon::probe(&p.pid)? {
        PidState::NotRunning(stale) => {
            if let Some(old) = stale {
                // No lock held: the pidfile is a leftover of a crash; it proves nothing runs.
                let _ = std::fs::remove_file(&p.pid);
                println!("{me} daemon not running (removed stale pidfile naming {old})");
            } else {
                println!("{me} daemon not running");
            }
            return Ok(0);
        }
        PidState::Running(pid) => Pid::from_raw(pid),
    };
    // A pidfd names this very process: no risk of signalling a recycled pid later.
    let fd = process::pidfd_open(pid)?;
    process::signal(pid, Signal::SIGTERM)?;
    let exited = signals::poll_fds(&[fd.as_fd()], Some(STOP_TIMEOUT))?;
    if exited.first() != Some(&true) {
        return Err(Error::runtime(format!(
            "daemon {pid} still running {} s after SIGTERM",
            STOP_TIMEOUT.as_secs()
        )));
    }
    println!("{me} daemon {pid} stopped");
    Ok(0)
}

fn status(p: &Paths) -> Result<i32> {
    match daemon::probe(&p.pid)? {
        PidState::Running(pid) => {
            let info = ipclab::inspect::info(pid);
            let Some(i) = info else {
                println!("daemon running: pid {pid} (not visible in /proc here)");
                return Ok(0);
            };
            let parent = ipclab::inspect::info(i.ppid)
                .map(|p| p.comm)
                .unwrap_or_default();
            println!(
                "daemon running: pid {pid}, ppid {} ({parent}), sid {}, session leader: {}, \
                 controlling terminal: {}",
                i.ppid,
                i.session,
                if i.session == pid { "yes" } else { "no" },
                if i.tty_nr == 0 {
                    "none".to_string()
                } else {
                    format!("tty_nr {}", i.tty_nr)
                }
            );
            Ok(0)
        }
        PidState::NotRunning(None) => {
            println!("daemon not running");
            Ok(3)
        }
        PidState::NotRunning(Some(old)) => {
            println!("daemon not running (stale pidfile names pid {old})");
            Ok(3)
        }
    }
}
