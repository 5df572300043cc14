//! Lab 8 — UDP server: a datagram socket bound to a port, recvfrom in a loop. Each datagram is
//! printed with its source address (IP and port) and answered "OK" to that address. A datagram
//! larger than the buffer is cut: recvfrom with MSG_TRUNC returns its whole length, and what did
//! not fit is lost — UDP keeps message boundaries, never a remainder.
//!
//! Syscalls, in order: socket(AF_INET, SOCK_DGRAM) and bind (EACCES below the unprivileged
//! port start, EADDRINUSE when taken: one line, exit 1), then poll, recvfrom(MSG_TRUNC),
//! sendto; the socket closed on SIGTERM or SIGINT, exit 0.
//!
//! Try: target/debug/udp-server --port 9875   (then: target/debug/udp-client --port 9875)
//!
//! strace shows:
//!   socket(AF_INET, SOCK_DGRAM|SOCK_CLOEXEC, IPPROTO_IP) = 7
//!   bind(7, {sa_family=AF_INET, sin_port=htons(9875), sin_addr=inet_addr("0.0.0.0")}, 16) = 0
//!   recvfrom(7, "hello", 16, MSG_TRUNC, {sa_family=AF_INET, sin_port=htons(38651), sin_addr=inet_addr("127.0.0.1")}, [128 => 16]) = 5
//!   recvfrom(7, "a datagram longe", 16, MSG_TRUNC, {sa_family=AF_INET, sin_port=htons(54539), sin_addr=inet_addr("127.0.0.1")}, [128 => 16]) = 33
//!   sendto(7, "OK", 2, MSG_NOSIGNAL, {sa_family=AF_INET, sin_port=htons(54539), sin_addr=inet_addr("127.0.0.1")}, 16) = 2

use clap::Parser;
use ipclab::error::{Error, Result};
use ipclab::inet;
use ipclab::signals::{poll_fds, SignalPipe};
use nix::sys::signal::Signal;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;

#[derive(Parser)]
#[command(about = "Lab 8: a UDP server that answers every datagram with OK")]
struct Args {
    /// Port to bind (below 1024 needs privilege).
    #[arg(long)]
    port: u16,
    /// Address to bind: 0.0.0.0 is every address of this host.
    #[arg(long, default_value = "0.0.0.0")]
    host: String,
    /// recvfrom's buffer in bytes: a longer datagram is cut.
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u32).range(1..=65536))]
    buffer: u32,
}

fn main() {
    ipclab::args::main(|a: &Args| run(a).map(|()| 0))
}

fn run(a: &Args) -> Result<()> {
    let addr = inet::resolve(&a.host, a.port)?;
    let mut signals = SignalPipe::new(&[Signal::SIGTERM, Signal::SIGINT])?;
    let sock = UdpSocket::bind(addr).map_err(|e| inet::bind_error(&e, addr))?;
    let local = sock.local_addr().unwrap_or(addr);
    println!("listening on {local} (UDP, buffer {} bytes)", a.buffer);
    loop {
        let ready = poll_fds(&[sock.as_fd(), signals.fd()], None)?;
        if ready[1] && !signals.take().is_empty() {
            println!("signal: closing the socket");
            return Ok(());
        }
        if !ready[0] {
            continue;
        }
        let d = inet::recv_datagram(&sock, a.buffer as usize)?;
        if d.len > d.data.len() {
            println!(
                "from {}: {} bytes, {} kept \"{}\" ({} lost: the datagram was larger than the buffer)",
                d.from,
                d.len,
                d.data.len(),
                inet::shown(&d.data),
                d.len - d.data.len()
            );
        } else {
            println!(
                "from {}: {} bytes \"{}\"",
                d.from,
                d.len,
                inet::shown(&d.data)
            );
        }
        reply(&sock, d.from)?;
    }
}

fn reply(sock: &UdpSocket, to: SocketAddr) -> Result<()> {
    sock.send_to(b"OK", to)
        .map(|_| ())
        .map_err(|e| Error::io(&e, "sendto", to))
}
