//! Lab 3 — main server under a watchdog: every P ms writes its heartbeat, publishes its pid and
//! round in the watchdog's data segment (lab 1's kind of segment), and sends `ping n` to each
//! secondary through that secondary's FIFO pair, then reads the pongs that came back. It never
//! blocks on a secondary: a frozen one just stops answering (its pipe fills, writes fail with
//! EAGAIN and are counted).
//!
//! Syscalls, in order: execve (started by the watchdog), openat + mmap of the heartbeat table
//! and of the data segment,
//! openat(ping-i, O_RDWR|O_NONBLOCK) and openat(pong-i, ...) per secondary, then write / read /
//! poll in a loop; it ends on SIGTERM (default action) or SIGKILL.
//!
//! Try: started by `watchdog`; run `target/debug/watchdog --secondaries 2 --events /tmp/ev`.
//!
//! strace shows:
//!   openat(AT_FDCWD, "DIR/ping-1", O_RDWR|O_NONBLOCK|O_CLOEXEC) = 4
//!   write(4, "ping 7\n", 7) = 7
//!   read(5, "pong 7\n", 4096) = 7
//!   write(6, "ping 8\n", 7) = -1 EAGAIN (Resource temporarily unavailable)

use clap::Parser;
use ipclab::error::{Error, Result};
use ipclab::shm::Segment;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Lab 3 main server (started by watchdog)")]
struct Args {
    #[command(flatten)]
    beat: ipclab::heartbeat::HeartbeatArgs,
    /// Directory holding ping-i / pong-i for i = 1..=K.
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    secondaries: u32,
    /// The watchdog's data segment: word 0 our pid, word 1 the round (for the secondaries).
    #[arg(long)]
    data: String,
}

fn main() {
    ipclab::args::main(|a: &Args| run(a).map(|()| 0))
}

fn run(a: &Args) -> Result<()> {
    let table = a.beat.table()?;
    table.beat(a.beat.slot);
    let data = Segment::open(&a.data)?;
    let [me, round, ..] = data.words() else {
        return Err(Error::runtime(format!("{}: segment too small", a.data)));
    };
    me.store(std::process::id() as u64, Ordering::Release);
    // O_RDWR|O_NONBLOCK: never blocks in open or write, never sees EOF when a secondary restarts.
    let open = |name: String| -> Result<File> {
        let p = a.dir.join(&name);
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&p)
            .map_err(|e| Error::io(&e, "open", p.display()))
    };
    let mut pairs = Vec::new();
    for i in 1..=a.secondaries {
        pairs.push((open(format!("ping-{i}"))?, open(format!("pong-{i}"))?));
    }
    let mut n: u64 = 0;
    let mut dropped: u64 = 0;
    let mut next_tick = ipclab::heartbeat::now_ms();
    loop {
        // Wake for pongs as they come, and at each tick of our own period.
        let wait = Duration::from_millis(next_tick.saturating_sub(ipclab::heartbeat::now_ms()));
        let fds: Vec<_> = pairs.iter().map(|(_, pong)| pong.as_fd()).collect();
        let ready = ipclab::signals::poll_fds(&fds, Some(wait))?;
        for ((_, pong), r) in pairs.iter_mut().zip(ready) {
            let mut chunk = [0u8; 4096];
            while r && matches!(pong.read(&mut chunk), Ok(k) if k > 0) {}
        }
        if ipclab::heartbeat::now_ms() < next_tick {
            continue;
        }
        next_tick = ipclab::heartbeat::now_ms() + a.beat.heartbeat_ms;
        table.beat(a.beat.slot);
        n += 1;
        round.store(n, Ordering::Release);
        for (ping, _) in pairs.iter_mut() {
            if ping.write(format!("ping {n}\n").as_bytes()).is_err() {
                dropped += 1;
                if dropped.is_power_of_two() {
                    ipclab::say!(
                        "[main {}] {dropped} pings not written: a secondary is not reading",
                        std::process::id()
                    );
                }
            }
        }
    }
}
