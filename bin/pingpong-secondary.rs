//! Lab 2 — secondary server: answers each `ping i` read from one FIFO with `pong i` on the
//! other, then exits first so that main can reap it.
//!
//! Syscalls, in order: execve (started by main), openat(ping, O_RDONLY) — blocks until main
//! opens it for writing —, openat(pong, O_WRONLY), read/write per exchange, exit_group(0).
//! If main dies, read returns 0 (end of file) or write fails with EPIPE: the secondary then
//! removes the FIFOs it was using (only if they are still the same files) and exits 1.
//!
//! Try: started by `pingpong`; run `strace -f target/debug/pingpong --exchanges 2 --dir DIR`.
//!
//! strace shows:
//!   openat(AT_FDCWD, "DIR/ping", O_RDONLY|O_CLOEXEC) = 3
//!   openat(AT_FDCWD, "DIR/pong", O_WRONLY|O_CLOEXEC) = 4
//!   read(3, "ping 1\n", 8192) = 7
//!   write(4, "pong 1\n", 7) = 7
//!   exit_group(0) = ?

use clap::Parser;
use ipclab::error::{Error, Result};
use ipclab::fifo;
use ipclab::process::{self, tag};
use nix::unistd::{getppid, Pid};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Lab 2 secondary server (started by pingpong)")]
struct Args {
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    exchanges: u64,
    /// FIFO main writes pings into.
    #[arg(long)]
    ping: PathBuf,
    /// FIFO this process writes pongs into.
    #[arg(long)]
    pong: PathBuf,
    #[arg(long)]
    quiet: bool,
    /// After the exchange, wait for main to exit and report the new parent (fault main-first).
    #[arg(long)]
    linger: bool,
}

fn main() {
    ipclab::args::main(run)
}

fn run(args: &Args) -> Result<i32> {
    let me = tag("secondary");
    let parent = getppid();
    // Opened first, before main can exit, so the fd names that very process.
    let parent_fd = if args.linger {
        Some(process::pidfd_open(parent)?)
    } else {
        None
    };
    ipclab::signals::ignore_sigpipe()?;

    let from_main = fifo::open_read(&args.ping)?;
    let mut to_main = fifo::open_write(&args.pong)?;
    let mut reader = BufReader::new(&from_main);
    let mut stdout = std::io::stdout().lock();
    let mut line = String::new();
    let mut msg = String::new();
    for i in 1..=args.exchanges {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| Error::io(&e, "read", args.ping.display()))?;
        if n == 0 {
            ipclab::say!(
                "{me} end of file on {} before ping {i}: main ({parent}) closed it (it died?)",
                args.ping.display()
            );
            return Ok(orphan_cleanup(args, &from_main, &to_main));
        }
        if line.trim_end() != format!("ping {i}") {
            return Err(Error::runtime(format!(
                "expected \"ping {i}\", got {:?}",
                line.trim_end()
            )));
        }
        if !args.quiet {
            writeln!(stdout, "pong {i}")
                .and_then(|_| stdout.flush())
                .map_err(|e| Error::io(&e, "write", "stdout"))?;
        }
        msg.clear();
        use std::fmt::Write as _;
        let _ = writeln!(msg, "pong {i}");
        if let Err(e) = to_main.write_all(msg.as_bytes()) {
            ipclab::say!("{}", Error::io(&e, "write", args.pong.display()));
            return Ok(orphan_cleanup(args, &from_main, &to_main));
        }
    }
    if let Some(fd) = parent_fd {
        drop((from_main, to_main));
        linger(&me, parent, fd)?;
    }
    Ok(0)
}

/// Main is gone: remove the FIFOs it left, but only if they are the ones we opened.
fn orphan_cleanup(args: &Args, from_main: &std::fs::File, to_main: &std::fs::File) -> i32 {
    for (path, file) in [(&args.ping, from_main), (&args.pong, to_main)] {
        if let Err(e) = fifo::unlink_if_same(path, file) {
            if !e.to_string().contains("ENOENT") {
                ipclab::say!("{e}");
            }
        }
    }
    1
}

/// Fault main-first: waits until main has exited (its pidfd turns readable), then shows who the
/// new parent is. Stays until Enter or end of stdin so `ps` can show it.
fn linger(me: &str, parent: Pid, parent_fd: std::os::fd::OwnedFd) -> Result<()> {
    use std::os::fd::AsFd;
    ipclab::signals::poll_fds(&[parent_fd.as_fd()], None)?;
    let now = getppid();
    let comm = ipclab::inspect::info(now.as_raw())
        .map(|p| p.comm)
        .unwrap_or_default();
    ipclab::say!(
        "{me} main ({parent}) exited before me: I am an orphan, my parent is now {now} ({comm}) \
         (press Enter or close stdin)"
    );
    let _ = std::io::stdin().lock().read_line(&mut String::new());
    Ok(())
}
