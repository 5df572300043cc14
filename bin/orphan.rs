//! Lab 5 — orphans: when a parent exits before its child, the child is re-parented to the nearest
//! ancestor marked as child subreaper (prctl PR_SET_CHILD_SUBREAPER), or to PID 1 when there is
//! none; the new parent is the one that must reap it.
//!
//! Three processes: the launcher (this program), the parent it forks, the child the parent forks.
//! The parent exits at once; the child watches it die (a pidfd turns readable) and reports
//! getppid() again. With `--subreaper` the launcher adopts and reaps the child itself.
//!
//! Syscalls, in order: prctl(PR_SET_CHILD_SUBREAPER) (with --subreaper), pipe2, clone (parent),
//! pidfd_open, clone (child), exit_group (parent), poll(pidfd) in the child, getppid, wait4.
//!
//! Try: target/debug/orphan --subreaper ; target/debug/orphan
//!
//! strace shows:
//!   prctl(PR_SET_CHILD_SUBREAPER, 1) = 0
//!   pidfd_open(PID, 0) = 3
//!   poll([{fd=3, events=POLLIN}], 1, -1) = 1 ([{fd=3, revents=POLLIN}])
//!   getppid() = PID
//!   wait4(-1, [{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = PID

use clap::Parser;
use ipclab::error::{Error, Result};
use ipclab::process::{self, tag};
use nix::errno::Errno;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, getpid, getppid, ForkResult, Pid};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

#[derive(Parser)]
#[command(about = "Lab 5: orphans are adopted by the nearest subreaper, or PID 1")]
struct Args {
    /// Make the launcher a child subreaper first: it adopts (and reaps) the orphan.
    #[arg(long)]
    subreaper: bool,
}

fn main() {
    ipclab::args::main(|a: &Args| run(a).map(|()| 0))
}

fn run(args: &Args) -> Result<()> {
    let me = tag("launcher");
    if args.subreaper {
        process::set_child_subreaper()?;
    }
    println!(
        "{me} child subreaper: {}",
        if process::is_child_subreaper() {
            "yes"
        } else {
            "no"
        }
    );
    // Both descendants inherit the write end; EOF on the read end = both have exited.
    let (done_r, done_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::sys(e, "pipe2", ""))?;
    std::io::stdout().flush().ok();

    // Safety: single-threaded; the forked parent runs `parent` and _exits.
    let parent = match unsafe { fork() } {
        Err(e) => return Err(Error::sys(e, "fork", "parent")),
        Ok(ForkResult::Child) => {
            drop(done_r);
            parent_role(done_w)
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(done_w);
    let st = process::wait_for(parent)?;
    println!("{me} reaped parent {parent}: {}", process::describe(&st));

    let mut rest = Vec::new();
    let _ = std::fs::File::from(done_r).read_to_end(&mut rest);
    if args.subreaper {
        // Adopted children are ours to wait for like any other.
        loop {
            match waitpid(Pid::from_raw(-1), None) {
                Err(Errno::ECHILD) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys(e, "waitpid", -1)),
                Ok(st) => println!(
                    "{me} reaped adopted orphan {}: {}",
                    st.pid().map(|p| p.to_string()).unwrap_or_default(),
                    process::describe(&st)
                ),
            }
        }
    } else {
        println!("{me} the orphan is not mine to reap: its new parent will");
    }
    Ok(())
}

/// The middle process: forks the child, then exits without waiting for it.
fn parent_role(done_w: OwnedFd) -> ! {
    let me = tag("parent");
    let my_pid = getpid();
    // Opened before the fork so the child inherits a handle on this very process.
    let me_fd = match process::pidfd_open(getpid()) {
        Ok(fd) => fd,
        Err(e) => process::die_in_child(&e, 1),
    };
    std::io::stdout().flush().ok();
    // Safety: single-threaded; the child runs `child_role` and _exits.
    match unsafe { fork() } {
        Err(e) => process::die_in_child(&Error::sys(e, "fork", "child"), 1),
        Ok(ForkResult::Child) => child_role(my_pid, me_fd, done_w),
        Ok(ForkResult::Parent { child }) => {
            println!("{me} forked child {child}; exiting without waiting for it");
            std::io::stdout().flush().ok();
            // Safety: _exit: the launcher reaps us.
            unsafe { libc::_exit(0) }
        }
    }
}

fn child_role(before: Pid, parent_fd: OwnedFd, _done_w: OwnedFd) -> ! {
    let me = tag("child");
    println!("{me} forked by {before}");
    std::io::stdout().flush().ok();
    if let Err(e) = ipclab::signals::poll_fds(&[parent_fd.as_fd()], None) {
        process::die_in_child(&e, 1);
    }
    let now = getppid();
    let comm = ipclab::inspect::info(now.as_raw())
        .map(|p| p.comm)
        .unwrap_or_default();
    let who = if now.as_raw() == 1 {
        "PID 1 (no subreaper above me)"
    } else {
        "the nearest child subreaper"
    };
    println!("{me} parent {before} exited; my parent is now {now} ({comm}): {who}");
    std::io::stdout().flush().ok();
    // Safety: _exit; whoever adopted us reaps us.
    unsafe { libc::_exit(0) }
}
