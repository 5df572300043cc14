//! Lab 9 — finger client: connects, sends one query line (`LOGIN\r\n`, RFC 1288), then reads
//! until the server closes. A stream has no message boundaries: one recv returns what has
//! arrived, up to the buffer's size, so a long answer takes several; only recv = 0 (the
//! server's close) says the answer is whole. The options are the sheet's (`--login L --host H`).
//!
//! Syscalls, in order: socket, connect, sendto (the query), recvfrom ... until one returns 0,
//! close; stdout gets the answer with its CRLF line ends turned back into LF.
//!
//! Try: target/debug/fingercli --login root --host 127.0.0.1 --port 7979 --buffer 64 --count
//!
//! strace shows:
//!   connect(3<TCP:[#4]>, {sa_family=AF_INET, sin_port=htons(7979), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
//!   sendto(3<TCP:[127.0.0.1:52218->127.0.0.1:7979]>, "root\r\n", 6, MSG_NOSIGNAL, NULL, 0) = 6
//!   recvfrom(3<TCP:[127.0.0.1:52218->127.0.0.1:7979]>, "", 4096, 0, NULL, NULL) = 0

use clap::Parser;
use ipclab::error::{Error, Result};
use ipclab::inet;
use std::io::{Read, Write};
use std::net::TcpStream;

#[derive(Parser)]
#[command(about = "Lab 9: ask a finger daemon about a login and print its whole answer")]
struct Args {
    /// The login asked about (empty: who is logged in there).
    #[arg(long, default_value = "")]
    login: String,
    /// The server's host name or address.
    #[arg(long)]
    host: String,
    #[arg(long, default_value_t = 7979)]
    port: u16,
    /// Bytes per recv: small, to see how many it takes.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1048576))]
    buffer: u32,
    /// Say on stderr how many recv calls and bytes the answer took.
    #[arg(long)]
    count: bool,
}

fn main() {
    ipclab::args::main(|a: &Args| run(a).map(|()| 0))
}

fn run(a: &Args) -> Result<()> {
    if a.login.contains(['\r', '\n']) {
        return Err(Error::usage("--login: one line (no CR or LF)"));
    }
    let addr = inet::resolve(&a.host, a.port)?;
    let mut s = TcpStream::connect(addr).map_err(|e| Error::io(&e, "connect", addr))?;
    s.write_all(format!("{}\r\n", a.login).as_bytes())
        .map_err(|e| Error::io(&e, "send", addr))?;
    let mut buf = vec![0u8; a.buffer as usize];
    let (mut calls, mut bytes) = (0u64, 0u64);
    let mut out = std::io::stdout().lock();
    // A CR that ends one recv may start a CRLF that the next completes.
    let mut cr = false;
    loop {
        let n = match s.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(&e, "recv", addr)),
        };
        calls += 1;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        let mut text = Vec::with_capacity(n + 1);
        for &b in &buf[..n] {
            if cr && b != b'\n' {
                text.push(b'\r');
            }
            cr = b == b'\r';
            if !cr {
                text.push(b);
            }
        }
        out.write_all(&text)
            .map_err(|e| Error::io(&e, "write", "stdout"))?;
    }
    if cr {
        let _ = out.write_all(b"\r");
    }
    out.flush().map_err(|e| Error::io(&e, "write", "stdout"))?;
    if a.count {
        eprintln!("{bytes} bytes in {calls} recv calls (the last returned 0: the server closed)");
    }
    Ok(())
}
