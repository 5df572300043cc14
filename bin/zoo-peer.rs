//! Lab 7 — zoo-peer: the other end of every `ipclab bench` measurement. Started by fork + execve
//! with the objects main created (inherited fds, or names and paths in `--spec`), it opens its
//! end, says "ready" on its report pipe, echoes each round trip, takes the one-way stream
//! (acknowledging each window), and reports its own CPU time for the round trips.
//!
//! Syscalls, in order: execve, then per mechanism: openat (FIFO), connect (sockets), mq_open,
//! mmap of the segment, or nothing (inherited pipe, socketpair, eventfd); write(report,
//! "ready"); then the mechanism's own pair, e.g. read + write on a pipe, futex wait + wake.
//!
//! Try: target/debug/ipclab bench --mechanism pipe --size 64 --round-trips 1000
//!
//! strace shows:
//!   execve("BIN/zoo-peer", ["BIN/zoo-peer", "--mechanism", "pipe", ...], ADDR) = 0
//!   write(5<pipe:[#3]>, "ready \n", 7) = 7
//!   read(3<pipe:[#1]>, "\0\0\0\0\0\0\0\0", 8) = 8
//!   write(4<pipe:[#2]>, "\0\0\0\0\0\0\0\0", 8) = 8

use clap::Parser;
use ipclab::error::{Error, Result};
use std::os::fd::FromRawFd;

#[derive(Parser)]
#[command(about = "Lab 7: the peer process of ipclab bench")]
struct Args {
    #[arg(long)]
    mechanism: Option<String>,
    #[arg(long, default_value_t = 1)]
    size: usize,
    #[arg(long, default_value_t = 1)]
    round_trips: u64,
    #[arg(long, default_value_t = 1)]
    window: usize,
    #[arg(long, default_value = "")]
    spec: String,
    /// Inherited fd where "ready" and the CPU time are written.
    #[arg(long)]
    report: Option<i32>,
    #[arg(long)]
    verify: bool,
    #[arg(long)]
    cpu: Option<usize>,
    /// Exit at once (the process-start costs).
    #[arg(long)]
    noop: bool,
}

fn main() {
    ipclab::args::main(run)
}

fn run(a: &Args) -> Result<i32> {
    if a.noop {
        return Ok(0);
    }
    let (Some(m), Some(fd)) = (&a.mechanism, a.report) else {
        return Err(Error::usage(
            "zoo-peer is started by ipclab bench (--mechanism and --report needed)",
        ));
    };
    let kind = ipclab::zoo::mech::Kind::parse(m)
        .ok_or_else(|| Error::usage(format!("unknown mechanism {m:?}")))?;
    if fd < 3 {
        return Err(Error::usage(format!("bad --report {fd}")));
    }
    // Safety: main passed us this fd, open and ours alone.
    let report = unsafe { std::fs::File::from_raw_fd(fd) };
    ipclab::zoo::serve(
        kind,
        &a.spec,
        a.size,
        a.round_trips,
        a.window.max(1),
        a.verify,
        a.cpu,
        report,
    )?;
    Ok(0)
}
