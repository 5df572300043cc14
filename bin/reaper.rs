//! Lab 5 — reaper: M children die, the parent gets ONE SIGCHLD. Standard signals do not queue: a
//! pending signal is a single bit, so while SIGCHLD is blocked, M deaths leave it pending once. A
//! handler that reaps one child per signal would leave M-1 zombies; the waitpid(-1, WNOHANG)
//! loop reaps them all.
//!
//! Syscalls, in order: rt_sigaction(SIGCHLD), rt_sigprocmask(SIG_BLOCK, [CHLD]), clone (fork) x M,
//! waitid(P_PID, WEXITED|WNOWAIT) x M (each child is a zombie), rt_sigpending,
//! rt_sigprocmask(SIG_UNBLOCK, [CHLD]) — the one delivery happens here —, wait4(-1, WNOHANG) x M+1.
//!
//! Stdout is lab 5's grading contract: `child i exited with status i` per reaped child; the
//! narration, with role and pid, goes to stderr.
//!
//! Try: target/debug/reaper --children 5
//!
//! strace shows:
//!   rt_sigprocmask(SIG_BLOCK, [CHLD], NULL, 8) = 0
//!   --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, ...} ---
//!   wait4(-1, [{WIFEXITED(s) && WEXITSTATUS(s) == 1}], WNOHANG, NULL) = PID
//!   wait4(-1, ADDR, WNOHANG, NULL) = -1 ECHILD (No child processes)

use clap::Parser;
use ipclab::error::{Error, Result};
use ipclab::process::{self, tag};
use ipclab::signals;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::{fork, ForkResult};
use std::io::Write;
use std::sync::atomic::Ordering;

#[derive(Parser)]
#[command(about = "Lab 5: M deaths, one SIGCHLD, M children reaped")]
struct Args {
    /// Number of children.
    #[arg(long, value_name = "M", default_value_t = 5, allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..=1000))]
    children: u32,
}

fn main() {
    ipclab::args::main(run)
}

fn run(args: &Args) -> Result<i32> {
    let me = tag("reaper");
    let (deliveries, _handler) = signals::count_deliveries(Signal::SIGCHLD)?;
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&chld), None)
        .map_err(|e| Error::sys(e, "sigprocmask", "SIG_BLOCK SIGCHLD"))?;
    ipclab::say!(
        "{me} SIGCHLD blocked; forking {} children that exit at once",
        args.children
    );
    std::io::stdout().flush().ok();

    let mut pids = Vec::new();
    for i in 0..args.children {
        // Safety: single-threaded; the child only calls _exit.
        match unsafe { fork() } {
            Err(e) => {
                // Reap those already made before failing, so the failure leaves no zombie.
                for pid in &pids {
                    let _ = process::wait_for(*pid);
                }
                return Err(Error::sys(e, "fork", format!("child {}", i + 1)));
            }
            // Safety: _exit, nothing of the parent runs in the child.
            Ok(ForkResult::Child) => unsafe { libc::_exit(((i + 1) % 256) as i32) },
            Ok(ForkResult::Parent { child }) => pids.push(child),
        }
    }
    for pid in &pids {
        waitid(Id::Pid(*pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)
            .map_err(|e| Error::sys(e, "waitid", pid))?;
    }
    let pending = sigpending()?;
    ipclab::say!(
        "{me} all {} children are zombies; SIGCHLD pending: {}; handler has run {} times",
        pids.len(),
        if pending.contains(Signal::SIGCHLD) {
            "yes, once"
        } else {
            "no"
        },
        deliveries.load(Ordering::SeqCst)
    );

    nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&chld), None)
        .map_err(|e| Error::sys(e, "sigprocmask", "SIG_UNBLOCK SIGCHLD"))?;
    let n = deliveries.load(Ordering::SeqCst);
    ipclab::say!(
        "{me} SIGCHLD unblocked: delivered {n} time(s) for {} deaths",
        pids.len()
    );

    let reaped = process::reap_all_nohang();
    for (pid, st) in &reaped {
        if let Some(i) = pids.iter().position(|p| p == pid) {
            println!("child {} {}", i + 1, process::describe(st));
        }
    }
    ipclab::say!(
        "{me} waitpid(-1, WNOHANG) loop reaped {} children",
        reaped.len()
    );
    let all = pids.iter().all(|p| reaped.iter().any(|(r, _)| r == p));
    Ok(if n == 1 && all && reaped.len() == pids.len() {
        0
    } else {
        1
    })
}

/// `sigpending`: the blocked signals waiting for delivery (nix has no wrapper).
fn sigpending() -> Result<SigSet> {
    // Safety: sigemptyset/sigpending write into the sigset_t we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        if libc::sigpending(&mut set) != 0 {
            return Err(Error::sys(nix::errno::Errno::last(), "sigpending", ""));
        }
        Ok(SigSet::from_sigset_t_unchecked(set))
    }
}
