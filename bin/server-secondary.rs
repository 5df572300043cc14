//! Lab 3 — secondary server under a watchdog: answers main's pings on its FIFO pair and writes a
//! heartbeat into the watchdog's table every P ms. Its first heartbeat comes before it opens its
//! data FIFOs, so a restart is visible to the watchdog even if the data side is stuck. It reads
//! main's pid from the data segment: a new pid means main was restarted, and nothing else has
//! to change (its FIFOs stay open).
//!
//! Syscalls, in order: execve (started by the watchdog), openat("/dev/shm/TABLE") + mmap (the
//! heartbeat table, then the data segment), openat(ping, O_RDWR), openat(pong, O_RDWR), then poll / read / write in a
//! loop; it ends on SIGTERM (default action) or SIGKILL.
//!
//! Try: started by `watchdog`; run `target/debug/watchdog --secondaries 2 --events /tmp/ev`.
//!
//! strace shows:
//!   openat(AT_FDCWD, "/dev/shm/ipclab-0-PID-XXXXXXXX", O_RDWR|O_NOFOLLOW|O_CLOEXEC) = 3
//!   openat(AT_FDCWD, "DIR/ping-1", O_RDWR|O_CLOEXEC) = 4
//!   poll([{fd=4, events=POLLIN}], 1, 49) = 1 ([{fd=4, revents=POLLIN}])
//!   read(4, "ping 7\n", 4096) = 7
//!   write(5, "pong 7\n", 7) = 7

use clap::Parser;
use ipclab::error::{Error, Result};
use ipclab::heartbeat::now_ms;
use ipclab::shm::Segment;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Lab 3 secondary server (started by watchdog)")]
struct Args {
    #[command(flatten)]
    beat: ipclab::heartbeat::HeartbeatArgs,
    #[arg(long)]
    ping: PathBuf,
    #[arg(long)]
    pong: PathBuf,
    /// The watchdog's data segment, where main publishes its pid and round.
    #[arg(long)]
    data: String,
}

fn main() {
    ipclab::args::main(|a: &Args| run(a).map(|()| 0))
}

fn run(a: &Args) -> Result<()> {
    let table = a.beat.table()?;
    table.beat(a.beat.slot);
    // O_RDWR: this end never sees end of file nor blocks in open when main restarts.
    let open = |p: &PathBuf| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(p)
            .map_err(|e| Error::io(&e, "open", p.display()))
    };
    let data = Segment::open(&a.data)?;
    let mut main_pid = data
        .words()
        .first()
        .map_or(0, |w| w.load(Ordering::Acquire));
    let mut ping = open(&a.ping)?;
    let mut pong = open(&a.pong)?;
    let period = Duration::from_millis(a.beat.heartbeat_ms);
    let mut next_beat = now_ms() + a.beat.heartbeat_ms;
    let mut buf = Vec::new();
    loop {
        let left = next_beat.saturating_sub(now_ms());
        let ready = ipclab::signals::poll_fds(
            &[ping.as_fd()],
            Some(Duration::from_millis(left).min(period)),
        )?;
        if ready.first() == Some(&true) {
            let mut chunk = [0u8; 4096];
            let n = ping
                .read(&mut chunk)
                .map_err(|e| Error::io(&e, "read", a.ping.display()))?;
            buf.extend_from_slice(&chunk[..n]);
            // A new pid in the segment: main was restarted. Our FIFOs stay open (O_RDWR), the
            // rounds start again from 1, and nothing else has to change here.
            let now_main = data
                .words()
                .first()
                .map_or(0, |w| w.load(Ordering::Acquire));
            if now_main != main_pid && main_pid != 0 {
                ipclab::say!(
                    "[secondary {}] main restarted (pid {main_pid} -> {now_main}); its rounds start again",
                    std::process::id()
                );
            }
            main_pid = now_main;
            while let Some(i) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=i).collect();
                let answer = String::from_utf8_lossy(&line).replacen("ping", "pong", 1);
                // Main may be gone (restarting): a full pipe is not our problem.
                let _ = pong.write(answer.as_bytes());
            }
        }
        if now_ms() >= next_beat {
            table.beat(a.beat.slot);
            next_beat = now_ms() + a.beat.heartbeat_ms;
        }
    }
}
