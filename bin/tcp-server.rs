//! Lab 8 — TCP server: socket, bind, listen (the backlog: connections the kernel completes
//! before accept takes them), then accept in a loop. accept returns a new socket for each
//! client, on the same local port: a connection is told apart by its four numbers (both
//! addresses, both ports), and the listening socket stays free for the next client. The stream
//! has no message boundaries: the server answers "OK" for each line it has received whole, and
//! when recv returns 0 the client has closed its side: the server closes its own.
//!
//! Syscalls, in order: socket(AF_INET, SOCK_STREAM), bind, listen(backlog), then poll, accept4,
//! recvfrom, sendto, close per client (recvfrom = 0: the client closed first; ECONNRESET: it
//! vanished, the server goes on); the listening socket closed on SIGTERM or SIGINT.
//!
//! Try: target/debug/tcp-server --port 9876   (then: target/debug/tcp-client --port 9876)
//!
//! strace shows:
//!   listen(7, 5) = 0
//!   accept4(7, {sa_family=AF_INET, sin_port=htons(35488), sin_addr=inet_addr("127.0.0.1")}, [128 => 16], SOCK_CLOEXEC) = 8
//!   recvfrom(8, "hello\n", 1024, 0, NULL, NULL) = 6
//!   sendto(8, "OK\n", 3, MSG_NOSIGNAL, NULL, 0) = 3
//!   recvfrom(8, "", 1024, 0, NULL, NULL) = 0

use clap::Parser;
use ipclab::error::{Error, Result};
use ipclab::inet;
use ipclab::signals::{poll_fds, SignalPipe};
use nix::sys::signal::Signal;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};

#[derive(Parser)]
#[command(about = "Lab 8: a TCP server that answers OK to every line, one client at a time")]
struct Args {
    #[arg(long)]
    port: u16,
    /// Address to bind: 0.0.0.0 is every address of this host.
    #[arg(long, default_value = "0.0.0.0")]
    host: String,
    /// listen's backlog.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(i32).range(0..=4096))]
    backlog: i32,
}

fn main() {
    ipclab::args::main(|a: &Args| run(a).map(|()| 0))
}

fn run(a: &Args) -> Result<()> {
    let addr = inet::resolve(&a.host, a.port)?;
    let mut signals = SignalPipe::new(&[Signal::SIGTERM, Signal::SIGINT])?;
    let listener = listen(addr, a.backlog)?;
    // The port bound, not the one asked: with --port 0 the kernel picks it.
    let local = listener.local_addr().unwrap_or(addr);
    println!(
        "listening on {local} (TCP, backlog {}, socket fd {})",
        a.backlog,
        listener.as_raw_fd()
    );
    loop {
        let ready = poll_fds(&[listener.as_fd(), signals.fd()], None)?;
        if ready[1] && !signals.take().is_empty() {
            println!("signal: closing the listening socket");
            return Ok(());
        }
        if !ready[0] {
            continue;
        }
        let (conn, peer) = match listener.accept() {
            Ok(c) => c,
            // A client that reset before we took it: nothing to serve.
            Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
            Err(e) => return Err(Error::io(&e, "accept", addr)),
        };
        println!(
            "accepted {peer} on a new socket (fd {}, local {}); the listening socket (fd {}) stays open",
            conn.as_raw_fd(),
            conn.local_addr().map_or("?".into(), |l| l.to_string()),
            listener.as_raw_fd()
        );
        if serve(conn, peer, &mut signals)? {
            println!("signal: closing the listening socket");
            return Ok(());
        }
    }
}

/// socket, bind, listen with our backlog (std's TcpListener::bind always uses 128).
fn listen(addr: SocketAddr, backlog: i32) -> Result<TcpListener> {
    use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Error::sys(e, "socket", "AF_INET SOCK_STREAM"))?;
    let SocketAddr::V4(v4) = addr else {
        return Err(Error::usage(format!("{addr}: an IPv4 address")));
    };
    bind(fd.as_raw_fd(), &nix::sys::socket::SockaddrIn::from(v4))
        .map_err(|e| inet::bind_error(&std::io::Error::from_raw_os_error(e as i32), addr))?;
    let b = Backlog::new(backlog).map_err(|e| Error::sys(e, "listen", addr))?;
    listen(&fd, b).map_err(|e| Error::sys(e, "listen", addr))?;
    Ok(TcpListener::from(fd))
}

/// One client until it closes (or vanishes); true if a signal asked us to stop meanwhile.
fn serve(mut conn: TcpStream, peer: SocketAddr, signals: &mut SignalPipe) -> Result<bool> {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let ready = poll_fds(&[conn.as_fd(), signals.fd()], None)?;
        if ready[1] && !signals.take().is_empty() {
            return Ok(true);
        }
        if !ready[0] {
            continue;
        }
        match conn.read(&mut buf) {
            Ok(0) => {
                println!("{peer} closed its side (recv returned 0): closing mine");
                return Ok(false);
            }
            Ok(n) => {
                println!(
                    "received {n} bytes from {peer}: \"{}\"",
                    inet::shown(&buf[..n])
                );
                pending.extend_from_slice(&buf[..n]);
                // One OK per whole line: a recv may hold part of a line, or several.
                while let Some(i) = pending.iter().position(|b| *b == b'\n') {
                    pending.drain(..=i);
                    if let Err(e) = conn.write_all(b"OK\n") {
                        println!("{peer} vanished ({e}): closing");
                        return Ok(false);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                println!("{peer} vanished ({e}): closing, serving the next client");
                return Ok(false);
            }
        }
    }
}
