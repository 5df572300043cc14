//! Lab 8 — TCP client: connect (the three-way handshake: SYN, SYN-ACK, ACK), then each message
//! as one line, the server's "OK" read back, and close first: the side that closes first goes
//! through FIN-WAIT to TIME_WAIT, 60 s on Linux, so that a late segment of this connection
//! cannot be taken for one of the next. With --hold it stops after connect until stdin says go,
//! so `ss -tn` can show the connection ESTABLISHED.
//!
//! Syscalls, in order: socket(AF_INET, SOCK_STREAM), connect, sendto and recvfrom per message,
//! close.
//!
//! Try: target/debug/tcp-client --port 9876 --message hello   (a tcp-server on 9876)
//!
//! strace shows:
//!   connect(3, {sa_family=AF_INET, sin_port=htons(9876), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
//!   sendto(3<TCP:[127.0.0.1:35488->127.0.0.1:9876]>, "hello\n", 6, MSG_NOSIGNAL, NULL, 0) = 6
//!   recvfrom(3<TCP:[127.0.0.1:35488->127.0.0.1:9876]>, "OK\n", 1024, 0, NULL, NULL) = 3
//!   close(3<TCP:[127.0.0.1:35488->127.0.0.1:9876]>) = 0

use clap::Parser;
use ipclab::error::{Error, Result};
use ipclab::inet;
use std::io::{BufRead, Read, Write};
use std::net::TcpStream;

#[derive(Parser)]
#[command(about = "Lab 8: connect to a TCP server, send lines, read its OKs, close first")]
struct Args {
    /// The server's host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long)]
    port: u16,
    /// What to send (default: this host's name, from gethostname).
    #[arg(long)]
    message: Option<String>,
    /// Lines to send, each answered OK.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100000))]
    count: u32,
    /// After connect, wait for a line (or end of file) on stdin before sending.
    #[arg(long)]
    hold: bool,
}

fn main() {
    ipclab::args::main(|a: &Args| run(a).map(|()| 0))
}

fn run(a: &Args) -> Result<()> {
    let server = inet::resolve(&a.host, a.port)?;
    let mut conn = TcpStream::connect(server).map_err(|e| Error::io(&e, "connect", server))?;
    let local = conn.local_addr().map_or("?".into(), |l| l.to_string());
    println!("connected from {local} to {server}");
    if a.hold {
        println!("holding the connection (press Enter or close stdin)");
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
    }
    let message = match &a.message {
        Some(m) => m.clone(),
        None => nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "hello".into()),
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 1024];
    for i in 1..=a.count {
        let line = if a.count > 1 {
            format!("{message} {i}\n")
        } else {
            format!("{message}\n")
        };
        conn.write_all(line.as_bytes())
            .map_err(|e| Error::io(&e, "send", server))?;
        // The answer may come in pieces: read until a whole line is here.
        while !pending.contains(&b'\n') {
            let n = conn
                .read(&mut buf)
                .map_err(|e| Error::io(&e, "recv", server))?;
            if n == 0 {
                return Err(Error::runtime(format!(
                    "{server} closed the connection before answering"
                )));
            }
            pending.extend_from_slice(&buf[..n]);
        }
        let end = pending.iter().position(|b| *b == b'\n').unwrap_or(0);
        let answer: Vec<u8> = pending.drain(..=end).collect();
        println!("server says \"{}\"", inet::shown(answer.trim_ascii_end()));
    }
    drop(conn);
    println!("closed first: this side goes to TIME_WAIT, the server's recv returns 0");
    Ok(())
}
