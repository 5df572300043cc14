//! Lab 4 — client: asks the dispatcher for a worker, then talks to that worker directly.
//! Exit status: 0 answered (the answer on stdout), 1 an error (a worker died mid-request...),
//! 2 bad usage (no dispatcher there), 3 every worker was busy.
//!
//! Syscalls, in order: socket + connect to DIR/dispatcher.sock, sendto (HELLO), recvfrom (WORKER
//! path or BUSY), close; socket + connect to the worker, sendto (REQ), recvfrom (RESP), close.
//!
//! Try: target/debug/client --dir /tmp/l4 --request hello   (see `make lab4`)
//!
//! strace shows:
//!   connect(3, {sa_family=AF_UNIX, sun_path="DIR/dispatcher.sock"}, LEN) = 0
//!   sendto(3, "\0\0\0\5HELLO", 9, MSG_NOSIGNAL, NULL, 0) = 9
//!   recvfrom(3, "WORKER DIR/worker-1.sock", 28, 0, NULL, NULL) = 28
//!   connect(3, {sa_family=AF_UNIX, sun_path="DIR/worker-1.sock"}, LEN) = 0
//!   sendto(3, "\0\0\0\tREQ hello", 13, MSG_NOSIGNAL, NULL, 0) = 13

use clap::Parser;
use ipclab::error::{Error, Result};
use ipclab::frame;
use ipclab::process::tag;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Lab 4 client: one request through the dispatcher")]
struct Args {
    #[arg(long)]
    dir: PathBuf,
    /// Text to send; the worker answers it in uppercase.
    #[arg(long)]
    request: String,
}

/// Longest wait for any answer (a safety net: servers answer or close).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

fn main() {
    ipclab::args::main(run)
}

fn connect(path: &Path) -> Result<UnixStream> {
    let s = UnixStream::connect(path).map_err(|e| Error::io(&e, "connect", path.display()))?;
    let _ = s.set_read_timeout(Some(ANSWER_TIMEOUT));
    Ok(s)
}

fn ask(s: &mut UnixStream, msg: &str, who: &str) -> Result<String> {
    frame::write(s, msg).map_err(|e| Error::io(&e, "write", who))?;
    match frame::read(s) {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err(Error::runtime(format!(
            "{who} closed the connection before answering"
        ))),
        Err(e) => Err(Error::runtime(format!("{who}: {e}"))),
    }
}

fn run(a: &Args) -> Result<i32> {
    let me = tag("client");
    let dispatcher = a.dir.join("dispatcher.sock");
    let mut d = connect(&dispatcher).map_err(|e| e.into_usage())?;
    ipclab::say!("{me} 1 connected to the dispatcher");
    let answer = ask(&mut d, "HELLO", "the dispatcher")?;
    drop(d);
    let Some(addr) = answer.strip_prefix("WORKER ") else {
        if answer == "BUSY" {
            ipclab::say!("{me} every worker is busy: try again later");
            return Ok(3);
        }
        return Err(Error::runtime(format!(
            "the dispatcher answered {answer:?}"
        )));
    };
    ipclab::say!("{me} 4 sent to {addr}");
    let mut w = connect(Path::new(addr))?;
    ipclab::say!("{me} 5 sending the request");
    let resp = ask(&mut w, &format!("REQ {}", a.request), "the worker")?;
    let Some(text) = resp.strip_prefix("RESP ") else {
        return Err(Error::runtime(format!("the worker answered {resp:?}")));
    };
    ipclab::say!("{me} 6 answered");
    println!("{text}");
    Ok(0)
}
