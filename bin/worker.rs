//! Lab 4 — worker: serves one client at a time on its service socket, and answers the
//! dispatcher on its control socket: `FREE?` (YES reserves it, or NO), `DONE?` (YES once its
//! current request is finished). A malformed frame gets `ERR ...`, never a crash.
//!
//! Syscalls, in order: socket(AF_UNIX, SOCK_STREAM) + bind + listen for DIR/worker-I.ctl and
//! DIR/worker-I.sock, then poll, accept4, recvfrom, sendto (std's stream I/O on sockets), close; unlink of both
//! sockets on SIGTERM.
//!
//! Try: target/debug/worker --id 1 --dir /tmp/l4   (with a dispatcher: see `make lab4`)
//!
//! strace shows:
//!   bind(3, {sa_family=AF_UNIX, sun_path="DIR/worker-1.ctl"}, LEN) = 0
//!   listen(3, -1) = 0
//!   accept4(4, {sa_family=AF_UNIX}, [110 => 2], SOCK_CLOEXEC) = 9
//!   recvfrom(9, "REQ hello", 9, 0, NULL, NULL) = 9
//!   sendto(9, "\0\0\0\nRESP HELLO", 14, MSG_NOSIGNAL, NULL, 0) = 14
//!   unlink("DIR/worker-1.sock") = 0

use clap::Parser;
use ipclab::error::Result;
use ipclab::frame;
use ipclab::process::tag;
use ipclab::signals::SignalPipe;
use nix::sys::signal::Signal;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Lab 4 worker: one request at a time, reserved by the dispatcher")]
struct Args {
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    id: u32,
    /// Directory of the sockets.
    #[arg(long)]
    dir: PathBuf,
    /// Under the lab 3 watchdog: its heartbeat table, our slot, the period.
    #[command(flatten)]
    beat: ipclab::heartbeat::HeartbeatArgs,
    /// How long a request takes to process (simulated work).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    work_ms: u64,
}

/// A reservation nobody uses is released after this long.
const RESERVATION: Duration = Duration::from_secs(2);
/// A peer that sends half a frame is dropped after this long.
const PEER_TIMEOUT: Duration = Duration::from_secs(1);

enum State {
    Free,
    Reserved(Instant),
    /// Working on a request: the answer goes out at `until` (the simulated work's end).
    Busy {
        client: UnixStream,
        answer: String,
        until: Instant,
    },
}

fn main() {
    ipclab::args::main(run)
}

fn run(a: &Args) -> Result<i32> {
    ipclab::fifo::check_dir(&a.dir)?;
    let mut beat = a.beat.beater()?;
    let me = tag(&format!("worker-{}", a.id));
    let ctl_path = a.dir.join(format!("worker-{}.ctl", a.id));
    let svc_path = a.dir.join(format!("worker-{}.sock", a.id));
    let ctl = frame::Bound::new(&ctl_path)?;
    let svc = frame::Bound::new(&svc_path)?;
    let (ctl, svc) = (&ctl.listener, &svc.listener);
    let mut sigs = SignalPipe::new(&[Signal::SIGTERM, Signal::SIGINT])?;
    let mut state = State::Free;
    let mut ctl_conns: Vec<UnixStream> = Vec::new();
    let mut waiting_done: Vec<UnixStream> = Vec::new();
    ipclab::say!("{me} listening on {}", ctl_path.display());
    loop {
        let due = match &state {
            State::Reserved(since) if since.elapsed() > RESERVATION => true,
            State::Busy { until, .. } => Instant::now() >= *until,
            _ => false,
        };
        if due {
            if let State::Busy {
                mut client, answer, ..
            } = std::mem::replace(&mut state, State::Free)
            {
                let _ = frame::write(&mut client, &answer);
                ipclab::say!("{me} 6 answered, closing");
            }
            answer_done(&mut waiting_done);
        }
        let wait = match &state {
            State::Busy { until, .. } => until.saturating_duration_since(Instant::now()),
            _ => Duration::from_millis(500),
        };
        let mut fds = vec![sigs.fd(), ctl.as_fd(), svc.as_fd()];
        fds.extend(ctl_conns.iter().map(|c| c.as_fd()));
        let wait = beat.wait().map_or(wait, |b| b.min(wait));
        let ready = ipclab::signals::poll_fds(&fds, Some(wait))?;
        beat.tick();
        if ready[0] && !sigs.take().is_empty() {
            ipclab::say!("{me} stopping");
            return Ok(0);
        }
        // Accepted now, polled from the next round (`ready` has no slot for it yet).
        let mut accepted = None;
        if ready[1] {
            if let Ok((c, _)) = ctl.accept() {
                let _ = c.set_read_timeout(Some(PEER_TIMEOUT));
                accepted = Some(c);
            }
        }
        if ready[2] {
            if let Ok((c, _)) = svc.accept() {
                serve(&me, c, &mut state, a.work_ms);
                if matches!(state, State::Free) {
                    answer_done(&mut waiting_done);
                }
            }
        }
        let mut keep = Vec::new();
        for (mut c, r) in std::mem::take(&mut ctl_conns)
            .into_iter()
            .zip(ready[3..].iter().copied())
        {
            if !r {
                keep.push(c);
                continue;
            }
            match frame::read(&mut c) {
                Ok(Some(m)) if m == "FREE?" => {
                    let yes = matches!(state, State::Free);
                    if yes {
                        state = State::Reserved(Instant::now());
                    }
                    let _ = frame::write(&mut c, if yes { "YES" } else { "NO" });
                    keep.push(c);
                }
                Ok(Some(m)) if m == "DONE?" => {
                    if matches!(state, State::Free) {
                        let _ = frame::write(&mut c, "YES");
                    } else {
                        waiting_done.push(c);
                    }
                }
                Ok(Some(m)) => {
                    let _ = frame::write(
                        &mut c,
                        &format!("ERR unknown control message {:?}", truncate(&m)),
                    );
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = frame::write(&mut c, &format!("ERR malformed frame: {e}"));
                }
            }
        }
        keep.extend(accepted);
        ctl_conns = keep;
    }
}

/// One client: reads `REQ <text>`; the answer `RESP <TEXT>` is sent when the work is done,
/// by the main loop, which meanwhile keeps answering the dispatcher (NO: busy).
fn serve(me: &str, mut c: UnixStream, state: &mut State, work_ms: u64) {
    let _ = c.set_read_timeout(Some(PEER_TIMEOUT));
    if !matches!(state, State::Reserved(_)) {
        let _ = frame::write(&mut c, "ERR not reserved: ask the dispatcher first");
        return;
    }
    match frame::read(&mut c) {
        Ok(Some(m)) if m.starts_with("REQ ") => {
            ipclab::say!("{me} 5 request received: {}", truncate(&m[4..]));
            let answer = format!("RESP {}", m[4..].to_uppercase());
            let until = Instant::now() + Duration::from_millis(work_ms);
            *state = State::Busy {
                client: c,
                answer,
                until,
            };
            return;
        }
        Ok(Some(m)) => {
            let _ = frame::write(&mut c, &format!("ERR expected REQ, got {:?}", truncate(&m)));
        }
        Ok(None) => {}
        Err(e) => {
            let _ = frame::write(&mut c, &format!("ERR malformed frame: {e}"));
        }
    }
    *state = State::Free;
}

fn answer_done(waiting: &mut Vec<UnixStream>) {
    for mut c in waiting.drain(..) {
        let _ = frame::write(&mut c, "YES");
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}
