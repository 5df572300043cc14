//! Lab 5 — zombie maker: a child that has exited but has not been waited for is a zombie: it keeps
//! its pid and its exit status in the process table, shows as `Z` / `<defunct>` in `ps`, and even
//! SIGKILL cannot remove it. Only its parent's wait (or the parent's own death) ends it.
//!
//! Syscalls, in order: clone (fork), exit_group(0) in the child, waitid(P_PID, WEXITED|WNOWAIT)
//! (wait for the exit without reaping), kill(SIGKILL) (no effect), wait4 (reaps: the zombie is gone).
//!
//! Try: target/debug/zombie --hold   (then `ps -o pid,ppid,stat,comm` in another terminal, Enter)
//!
//! strace shows:
//!   clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, ...) = PID
//!   exit_group(0) = ?
//!   waitid(P_PID, PID, {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=PID, si_uid=UID, si_status=0, si_utime=0, si_stime=0}, WEXITED|WNOWAIT, NULL) = 0
//!   kill(PID, SIGKILL) = 0
//!   wait4(PID, [{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = PID

use clap::Parser;
use ipclab::error::{Error, Result};
use ipclab::inspect;
use ipclab::process::{self, tag};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::{fork, ForkResult};
use std::io::{BufRead, Write};

#[derive(Parser)]
#[command(about = "Lab 5: make a zombie, fail to kill it, reap it")]
struct Args {
    /// Before reaping, wait for Enter (or end of stdin) so you can look with ps.
    #[arg(long)]
    hold: bool,
}

fn main() {
    ipclab::args::main(|a: &Args| run(a).map(|()| 0))
}

fn run(args: &Args) -> Result<()> {
    let me = tag("parent");
    std::io::stdout().flush().ok();
    // Safety: single-threaded; the child only calls _exit.
    let child = match unsafe { fork() } {
        Err(e) => return Err(Error::sys(e, "fork", "")),
        // Safety: _exit ends the child without running the parent's atexit handlers or flushing
        // its copy of stdio buffers.
        Ok(ForkResult::Child) => unsafe { libc::_exit(0) },
        Ok(ForkResult::Parent { child }) => child,
    };
    println!("{me} forked child {child}; it exits at once");

    // WNOWAIT: block until the child has exited, but leave it unreaped, i.e. a zombie.
    waitid(Id::Pid(child), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)
        .map_err(|e| Error::sys(e, "waitid", child))?;
    let row = |what: &str| match inspect::info(child.as_raw()) {
        Some(p) => println!("{me} {what}: {}", p.row().trim_start()),
        None => println!("{me} {what}: no /proc/{child} (gone)"),
    };
    row("child exited, not yet waited for");

    process::signal(child, Signal::SIGKILL)?;
    row("after kill -KILL (a zombie is already dead)");

    if args.hold {
        println!("{me} run: ps -o pid,ppid,stat,comm -p {child}   then press Enter to reap");
        std::io::stdout().flush().ok();
        let _ = std::io::stdin().lock().read_line(&mut String::new());
    }
    let st = process::wait_for(child)?;
    println!("{me} waitpid({child}): {}", process::describe(&st));
    row("after waitpid");
    Ok(())
}
