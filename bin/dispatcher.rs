//! Lab 4 — dispatcher: hands each client to a free worker. The 7-step handoff: (1) a client
//! connects; (2) the dispatcher asks each worker `FREE?` on its control socket; (3) a free worker
//! says YES (a busy one NO; if none is free the client gets `BUSY` and the connection closes);
//! (4) the dispatcher sends the client `WORKER <socket path>` and closes; (5, 6) the client and
//! the worker talk directly; (7) the dispatcher asks the worker `DONE?` and it says YES.
//!
//! Syscalls, in order: socket + bind + listen on DIR/dispatcher.sock, then per client: accept,
//! recvfrom (HELLO), connect to each worker's control socket, sendto/recvfrom (FREE?/YES), sendto
//! (WORKER), close; poll for the DONE? answers; unlink of its socket on SIGTERM.
//!
//! Try: target/debug/dispatcher --workers 2 --dir /tmp/l4   (see `make lab4`)
//!
//! strace shows:
//!   bind(3, {sa_family=AF_UNIX, sun_path="DIR/dispatcher.sock"}, LEN) = 0
//!   accept4(3, {sa_family=AF_UNIX}, [110 => 2], SOCK_CLOEXEC) = 8
//!   connect(9, {sa_family=AF_UNIX, sun_path="DIR/worker-1.ctl"}, LEN) = 0
//!   sendto(9, "\0\0\0\5FREE?", 9, MSG_NOSIGNAL, NULL, 0) = 9
//!   sendto(8, "\0\0\0\34WORKER DIR/worker-1.sock", 32, MSG_NOSIGNAL, NULL, 0) = 32

use clap::Parser;
use ipclab::error::Result;
use ipclab::frame;
use ipclab::process::tag;
use ipclab::signals::SignalPipe;
use nix::sys::signal::Signal;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Lab 4 dispatcher: hands each client to a free worker, or answers BUSY")]
struct Args {
    /// Workers 1..=K, reached at DIR/worker-I.ctl and DIR/worker-I.sock.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    workers: u32,
    #[arg(long)]
    dir: PathBuf,
    /// Under the lab 3 watchdog: its heartbeat table, our slot, the period.
    #[command(flatten)]
    beat: ipclab::heartbeat::HeartbeatArgs,
}

/// A worker that does not answer FREE? this fast counts as busy (it may be mid-request).
const ASK_TIMEOUT: Duration = Duration::from_millis(300);

fn main() {
    ipclab::args::main(run)
}

fn run(a: &Args) -> Result<i32> {
    ipclab::fifo::check_dir(&a.dir)?;
    let mut beat = a.beat.beater()?;
    let me = tag("dispatcher");
    let path = a.dir.join("dispatcher.sock");
    let bound = frame::Bound::new(&path)?;
    let listener = &bound.listener;
    let mut sigs = SignalPipe::new(&[Signal::SIGTERM, Signal::SIGINT])?;
    let mut done: Vec<(u32, UnixStream)> = Vec::new();
    ipclab::say!("{me} listening on {}", path.display());
    loop {
        let mut fds = vec![sigs.fd(), listener.as_fd()];
        fds.extend(done.iter().map(|(_, c)| c.as_fd()));
        let ready = ipclab::signals::poll_fds(&fds, beat.wait())?;
        beat.tick();
        if ready[0] && !sigs.take().is_empty() {
            ipclab::say!("{me} stopping");
            return Ok(0);
        }
        // Asked now, polled from the next round (`ready` has no slot for it yet).
        let mut asked = None;
        if ready[1] {
            if let Ok((client, _)) = listener.accept() {
                if let Some(w) = hand_off(&me, a, client) {
                    // 7: ask the worker to tell us when it has finished.
                    if let Ok(mut c) = UnixStream::connect(a.dir.join(format!("worker-{w}.ctl"))) {
                        if frame::write(&mut c, "DONE?").is_ok() {
                            asked = Some((w, c));
                        }
                    }
                }
            }
        }
        let mut keep = Vec::new();
        for ((w, mut c), r) in std::mem::take(&mut done)
            .into_iter()
            .zip(ready[2..].iter().copied())
        {
            if !r {
                keep.push((w, c));
                continue;
            }
            match frame::read(&mut c) {
                Ok(Some(m)) if m == "YES" => ipclab::say!("{me} 7 worker-{w} says it has finished"),
                _ => ipclab::say!("{me} 7 worker-{w} never said it finished (it died?)"),
            }
        }
        keep.extend(asked);
        done = keep;
    }
}

/// Steps 1-4 for one client; returns the worker it was given.
fn hand_off(me: &str, a: &Args, mut client: UnixStream) -> Option<u32> {
    let _ = client.set_read_timeout(Some(Duration::from_secs(1)));
    match frame::read(&mut client) {
        Ok(Some(m)) if m == "HELLO" => {}
        Ok(Some(m)) => {
            let _ = frame::write(
                &mut client,
                &format!(
                    "ERR expected HELLO, got {:?}",
                    m.chars().take(40).collect::<String>()
                ),
            );
            return None;
        }
        Ok(None) => return None,
        Err(e) => {
            let _ = frame::write(&mut client, &format!("ERR malformed frame: {e}"));
            return None;
        }
    }
    ipclab::say!("{me} 1 client connected");
    for w in 1..=a.workers {
        let Ok(mut c) = UnixStream::connect(a.dir.join(format!("worker-{w}.ctl"))) else {
            continue;
        };
        let _ = c.set_read_timeout(Some(ASK_TIMEOUT));
        ipclab::say!("{me} 2 asking worker-{w}: FREE?");
        if frame::write(&mut c, "FREE?").is_err() {
            continue;
        }
        if let Ok(Some(answer)) = frame::read(&mut c) {
            ipclab::say!("{me} 3 worker-{w} says {answer}");
            if answer == "YES" {
                let addr = a.dir.join(format!("worker-{w}.sock"));
                let _ = frame::write(&mut client, &format!("WORKER {}", addr.display()));
                ipclab::say!("{me} 4 client sent to worker-{w}; closing");
                return Some(w);
            }
        }
    }
    let _ = frame::write(&mut client, "BUSY");
    ipclab::say!("{me} 3 no worker free: BUSY");
    None
}
