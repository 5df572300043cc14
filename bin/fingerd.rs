//! Lab 9 — finger daemon (RFC 1288, which obsoletes the sheet's RFC 1196): a TCP server that
//! reads one query line, answers with what the local `finger` says, and closes. It binds its
//! port first (so a port in use is said to the shell, exit 1), then leaves as lab 6 taught:
//! fork, setsid, fork, umask, chdir("/"), fds 0-2 on /dev/null; a locked pidfile, a log line
//! per query (login, client address). Each client has a thread of its own: a slow client does
//! not hold up the next.
//!
//! The query is never given to a shell: the sheet's `"finger " + received` run by a shell lets
//! a client send `x; rm -rf ~`. Here a query is checked against RFC 1288's grammar and a login
//! is letters, digits, `_ . -` (not first), at most 32: `finger -l -m -- LOGIN` runs from an
//! argv. Forwarding (`user@host`) is refused, as RFC 1288 §3.2.1 advises.
//!
//! Syscalls, in order: socket, bind, listen (launcher), clone x2, setsid, umask, chdir, openat
//! (pidfile, flock, log), then per client: accept4, clone3 (its thread), recvfrom (the query),
//! clone3 with CLONE_VFORK (posix_spawn of finger), sendto (the answer), close; on SIGTERM
//! unlink(pidfile).
//!
//! Try: target/debug/fingerd --dir /tmp/f --port 7979; target/debug/fingercli --login root --host 127.0.0.1
//!
//! strace shows:
//!   bind(3<TCP:[#1]>, {sa_family=AF_INET, sin_port=htons(7979), sin_addr=inet_addr("0.0.0.0")}, 16) = 0
//!   setsid() = <middle>
//!   flock(4<DIR/fingerd.pid>, LOCK_EX|LOCK_NB) = 0
//!   recvfrom(5<TCP:[127.0.0.1:7979->127.0.0.1:52218]>, "root\r\n", 512, 0, NULL, NULL) = 6
//!   clone3({flags=CLONE_VM|CLONE_VFORK, exit_signal=SIGCHLD, stack=ADDR, stack_size=0x9000}, 88) = <daemon.1>
//!   unlink("DIR/fingerd.pid") = 0

use clap::Parser;
use ipclab::daemon::{self, PidState, Pidfile};
use ipclab::error::{exit_with, Error, Result};
use ipclab::inet;
use ipclab::signals::{poll_fds, SignalPipe};
use nix::sys::signal::Signal;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Lab 9: a finger daemon (RFC 1288) on TCP, answering with the local finger")]
struct Args {
    /// Directory for fingerd.pid and fingerd.log (yours alone: not /tmp itself).
    #[arg(long)]
    dir: PathBuf,
    /// 79 is finger's port (/etc/services) and needs root: the sheet uses 7979.
    #[arg(long, default_value_t = 7979)]
    port: u16,
    /// Address to bind: 0.0.0.0 is every address of this host.
    #[arg(long, default_value = "0.0.0.0")]
    host: String,
    /// Stay attached: no fork, no setsid (for supervisors and debugging).
    #[arg(long)]
    foreground: bool,
}

/// The longest query line read (RFC 1288 sets none; a login is far shorter).
const MAX_QUERY: usize = 512;
/// A client that sends no line within this is dropped (a thread is not held forever).
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// What of finger's output is sent at most (a plan file can be large, not unbounded).
const MAX_ANSWER: usize = 4 << 20;
const FINGER: &str = "/usr/bin/finger";
/// After the answer, how long and how much of a client's leftover input is read before closing.
const DRAIN: Duration = Duration::from_millis(500);
const MAX_DRAIN: usize = 1 << 20;

struct Paths {
    pid: PathBuf,
    log: PathBuf,
}

fn main() {
    let a: Args = ipclab::args::parse();
    match start(&a) {
        Ok(code) => std::process::exit(code),
        Err(e) => exit_with(&e),
    }
}

fn start(a: &Args) -> Result<i32> {
    // The daemon runs in /: D must be absolute, checked as a private directory first. In a
    // directory others may write (the sheet's /tmp), anyone could plant fingerd.pid first, or a
    // symbolic link where our log will be opened.
    ipclab::fifo::check_dir(&a.dir)?;
    let meta = std::fs::metadata(&a.dir).map_err(|e| Error::io(&e, "stat", a.dir.display()))?;
    use std::os::unix::fs::MetadataExt;
    if meta.mode() & 0o022 != 0 || meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(Error::usage(format!(
            "{}: not a private directory (yours, writable by you alone: mkdir -m 700 DIR)",
            a.dir.display()
        )));
    }
    let dir = a
        .dir
        .canonicalize()
        .map_err(|e| Error::io(&e, "realpath", a.dir.display()).into_usage())?;
    let p = Paths {
        pid: dir.join("fingerd.pid"),
        log: dir.join("fingerd.log"),
    };
    if let PidState::Running(pid) = daemon::probe(&p.pid)? {
        return Err(Error::usage(format!(
            "fingerd already running (pid {pid}, {}): refusing a second start",
            p.pid.display()
        )));
    }
    if !Path::new(FINGER).exists() {
        return Err(Error::runtime(format!(
            "{FINGER} is missing: install Debian's finger package (apt-get install finger)"
        )));
    }
    // Bound before leaving the shell: a port in use is said here, with exit status 1.
    let addr = inet::resolve(&a.host, a.port)?;
    let listener = TcpListener::bind(addr).map_err(|e| inet::bind_error(&e, addr))?;
    // --port 0: the kernel's choice, said below.
    let addr = listener.local_addr().unwrap_or(addr);
    if a.foreground {
        return serve(&p, listener, None);
    }
    // The daemon writes "ok PID" or its error on the readiness pipe once it holds the pidfile.
    let answer = daemon::launch(|ready| {
        detach(&p, listener, ready);
    })?;
    match answer.strip_prefix("ok ") {
        Some(pid) => {
            println!(
                "fingerd {} listening on {addr}; pidfile {}, log {}",
                pid.trim(),
                p.pid.display(),
                p.log.display()
            );
            Ok(0)
        }
        None if answer.is_empty() => Err(Error::runtime("fingerd died while starting")),
        None => Err(Error::runtime(answer.trim().to_string())),
    }
}

/// Middle process: new session, second fork, exit. The grandchild becomes the daemon.
fn detach(p: &Paths, listener: TcpListener, ready: OwnedFd) -> ! {
    daemon::become_daemon(&ready, &[listener.as_raw_fd()]);
    let code = serve(p, listener, Some(ready)).unwrap_or(1);
    // Safety: _exit from a forked process.
    unsafe { libc::_exit(code) }
}

/// One message to the launcher through the readiness pipe (stderr is /dev/null by now).
fn tell(ready: &OwnedFd, msg: &str) {
    // Safety: write(2) of our own buffer; messages are far below PIPE_BUF: they arrive whole.
    unsafe { libc::write(ready.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
}

/// The daemon proper: pidfile, log, then accept until SIGTERM (or SIGINT).
fn serve(p: &Paths, listener: TcpListener, ready: Option<OwnedFd>) -> Result<i32> {
    let fail = |e: Error| {
        if let Some(r) = &ready {
            tell(r, &e.to_string());
        }
        Err(e)
    };
    let pidfile = match Pidfile::acquire(&p.pid) {
        Ok(Ok(pf)) => pf,
        Ok(Err(pid)) => return fail(Error::usage(format!("fingerd already running (pid {pid})"))),
        Err(e) => return fail(e),
    };
    let (log, mut sigs) = match daemon::open_log(&p.log)
        .and_then(|l| Ok((l, SignalPipe::new(&[Signal::SIGTERM, Signal::SIGINT])?)))
    {
        Ok(x) => x,
        Err(e) => {
            let _ = pidfile.remove();
            return fail(e);
        }
    };
    let log = Arc::new(Mutex::new(log));
    let at = listener.local_addr().map_or("?".into(), |a| a.to_string());
    note(
        &log,
        &format!("started: pid {}, listening on {at}", std::process::id()),
    );
    match &ready {
        Some(r) => tell(r, &format!("ok {}\n", std::process::id())),
        None => println!(
            "fingerd listening on {at} (foreground); log {}",
            p.log.display()
        ),
    }
    drop(ready);
    // Each client's thread, and a second handle on its socket (by a number of ours) to cut it
    // short on SIGTERM; the thread drops that handle before its own, so its close is the last.
    let open: Arc<Mutex<std::collections::HashMap<u64, TcpStream>>> = Arc::default();
    let mut threads: Vec<std::thread::JoinHandle<()>> = Vec::new();
    for id in 0u64.. {
        let ready = poll_fds(&[listener.as_fd(), sigs.fd()], None)?;
        if ready[1] {
            if let Some(sig) = sigs.take().first() {
                note(
                    &log,
                    &format!("{}: closing, removing the pidfile", sig.as_str()),
                );
                break;
            }
        }
        threads.retain(|h| !h.is_finished());
        if !ready[0] {
            continue;
        }
        let (conn, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
            Err(e) => return Err(Error::io(&e, "accept", &at)),
        };
        if let (Ok(second), Ok(mut m)) = (conn.try_clone(), open.lock()) {
            m.insert(id, second);
        }
        let (log, open) = (Arc::clone(&log), Arc::clone(&open));
        threads.push(std::thread::spawn(move || {
            answer(&conn, peer, &log);
            if let Ok(mut m) = open.lock() {
                m.remove(&id);
            }
        }));
    }
    drop(listener);
    if let Ok(m) = open.lock() {
        // A client still sending its query is cut off; one being answered ends its write.
        for s in m.values() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
    for h in threads {
        let _ = h.join();
    }
    pidfile.remove()?;
    Ok(0)
}

fn note(log: &Mutex<File>, msg: &str) {
    if let Ok(mut l) = log.lock() {
        daemon::log_line(&mut l, msg);
    }
}

/// One client: its query line, the answer, close. Logged whatever becomes of it.
fn answer(mut conn: &TcpStream, peer: SocketAddr, log: &Mutex<File>) {
    let reply = match read_query(conn) {
        Err(why) => {
            note(log, &format!("from {peer}: refused ({why})"));
            format!("fingerd: {why}\r\n").into_bytes()
        }
        Ok(q) => match parse(&q) {
            Err(why) => {
                note(log, &format!("login {:?} from {peer}: refused ({why})", q));
                format!("fingerd: {why}\r\n").into_bytes()
            }
            Ok(login) => {
                let out = finger(login.as_deref());
                note(
                    log,
                    &format!(
                        "login {:?} from {peer}: {} bytes",
                        login.as_deref().unwrap_or(""),
                        out.len()
                    ),
                );
                out
            }
        },
    };
    let _ = conn.write_all(&reply);
    // A refused query may leave unread bytes: closing on them would send a reset, which can
    // destroy our answer in flight. End our side, then read what is left (bounded).
    let _ = conn.shutdown(Shutdown::Write);
    let _ = conn.set_read_timeout(Some(DRAIN));
    let mut sink = [0u8; 4096];
    let mut left = MAX_DRAIN;
    while left > 0 {
        match conn.read(&mut sink) {
            Ok(n) if n > 0 => left = left.saturating_sub(n),
            _ => break,
        }
    }
    // Our close is the end of the answer (the client reads until it sees it); the socket's
    // last descriptor goes with the thread.
}

/// The query: bytes up to the first LF (a CR before it dropped), within MAX_QUERY.
fn read_query(mut conn: &TcpStream) -> std::result::Result<String, String> {
    let _ = conn.set_read_timeout(Some(QUERY_TIMEOUT));
    let mut line: Vec<u8> = Vec::new();
    let mut buf = [0u8; MAX_QUERY];
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) => return Err("no query line: the client closed first".into()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("no query line ({e})")),
        };
        line.extend_from_slice(&buf[..n]);
        if let Some(i) = line.iter().position(|&b| b == b'\n') {
            line.truncate(i);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            break;
        }
        if line.len() > MAX_QUERY {
            return Err(format!("query longer than {MAX_QUERY} bytes"));
        }
    }
    if line.len() > MAX_QUERY {
        return Err(format!("query longer than {MAX_QUERY} bytes"));
    }
    if line.contains(&0) {
        return Err("a NUL byte in the query".into());
    }
    String::from_utf8(line).map_err(|_| "the query is not text".into())
}

/// RFC 1288's {Q1}: `[/W] [login]`. `None`: no login (finger lists who is logged in).
fn parse(q: &str) -> std::result::Result<Option<String>, String> {
    let q = q.trim_start();
    // /W asks for the long form: ours is always long (-l).
    let q = q
        .strip_prefix("/W")
        .or(q.strip_prefix("/w"))
        .unwrap_or(q)
        .trim();
    if q.is_empty() {
        return Ok(None);
    }
    if q.contains('@') {
        return Err("forwarding (user@host) refused".into());
    }
    let ok = q.len() <= 32
        && !q.starts_with(['-', '.'])
        && q.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(Some(q.to_string()))
    } else {
        Err(format!(
            "not a login: {q:?} (letters, digits, _ . -, at most 32)"
        ))
    }
}

/// finger's stdout then stderr ("no such user" goes there), lines ending CRLF as RFC 1288 has
/// them. argv only: no shell ever sees the login.
fn finger(login: Option<&str>) -> Vec<u8> {
    let mut c = std::process::Command::new(FINGER);
    c.arg("-l").arg("-m");
    if let Some(l) = login {
        c.arg("--").arg(l);
    }
    let out = c
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LANG", "C")
        .stdin(std::process::Stdio::null())
        .output();
    let mut text = match out {
        Ok(o) => [o.stdout, o.stderr].concat(),
        Err(e) => format!("fingerd: cannot run {FINGER}: {e}\n").into_bytes(),
    };
    text.truncate(MAX_ANSWER);
    let mut wire = Vec::with_capacity(text.len() + text.len() / 32);
    for b in text {
        if b == b'\n' {
            wire.push(b'\r');
        }
        wire.push(b);
    }
    wire
}
