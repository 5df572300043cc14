//! Lab 8 — UDP client: no connection, each message a datagram sent with sendto to the server's
//! address; the server's "OK" comes back by recvfrom. Sent to a port nobody has bound, the
//! datagram is simply lost: sendto succeeds and no answer ever comes. Only a connected UDP socket
//! (--connect) hears the ICMP "port unreachable" the other host sends back, as ECONNREFUSED.
//!
//! Syscalls, in order: socket(AF_INET, SOCK_DGRAM), connect with --connect, then per message
//! sendto and poll for the answer (bounded by --wait-ms), recvfrom; close.
//!
//! Try: target/debug/udp-client --port 9875 --message hello   (a udp-server on 9875)
//!
//! strace shows:
//!   sendto(3, "hello", 5, MSG_NOSIGNAL, {sa_family=AF_INET, sin_port=htons(9875), sin_addr=inet_addr("127.0.0.1")}, 16) = 5
//!   recvfrom(3, "OK", 2048, 0, {sa_family=AF_INET, sin_port=htons(9875), sin_addr=inet_addr("127.0.0.1")}, [128 => 16]) = 2
//!   connect(3, {sa_family=AF_INET, sin_port=htons(9999), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
//!   recvfrom(3, ADDR, 2048, 0, ADDR, [128]) = -1 ECONNREFUSED (Connection refused)

use clap::Parser;
use ipclab::error::{Error, Result};
use ipclab::inet;
use ipclab::signals::poll_fds;
use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Lab 8: send datagrams to a UDP server and wait for its OK")]
struct Args {
    /// The server's host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long)]
    port: u16,
    /// What to send (default: this host's name, from gethostname).
    #[arg(long)]
    message: Option<String>,
    /// Messages to send, one datagram each.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100000))]
    count: u32,
    /// How long to wait for each answer.
    #[arg(long, default_value_t = 1000)]
    wait_ms: u64,
    /// Connect the socket first, so an ICMP "port unreachable" is reported (ECONNREFUSED).
    #[arg(long)]
    connect: bool,
}

fn main() {
    ipclab::args::main(run)
}

fn run(a: &Args) -> Result<i32> {
    let server = inet::resolve(&a.host, a.port)?;
    let sock = UdpSocket::bind(("0.0.0.0", 0)).map_err(|e| Error::io(&e, "bind", "0.0.0.0:0"))?;
    if a.connect {
        sock.connect(server)
            .map_err(|e| Error::io(&e, "connect", server))?;
    }
    let message = match &a.message {
        Some(m) => m.clone(),
        None => nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "hello".into()),
    };
    for i in 1..=a.count {
        let text = if a.count > 1 {
            format!("{message} {i}")
        } else {
            message.clone()
        };
        sock.send_to(text.as_bytes(), server)
            .map_err(|e| Error::io(&e, "sendto", server))?;
        println!("sent {} bytes to {server}", text.len());
        let ready = poll_fds(&[sock.as_fd()], Some(Duration::from_millis(a.wait_ms)))?;
        if !ready[0] {
            println!(
                "no answer within {} ms: UDP does not say whether anybody received it",
                a.wait_ms
            );
            return Ok(1);
        }
        let mut buf = [0u8; 2048];
        let (n, from) = sock.recv_from(&mut buf).map_err(|e| {
            Error::io(&e, "recvfrom", server).with_hint(if a.connect {
                ": the server's host answered that nobody listens on that port (ICMP port unreachable)"
            } else {
                ""
            })
        })?;
        println!("answer from {from}: \"{}\"", inet::shown(&buf[..n]));
    }
    Ok(0)
}
