//! Lab 8 starter: a UDP and a TCP server and client, one program, the role as first argument.
//!
//! The lab text: labs/lab8-sockets/README.md (the grading contract is at its end).
//! Run it:   cargo run -- udp-server --port 9875 &  cargo run -- udp-client --host 127.0.0.1 --port 9875 --message hi
//! Grade it: make grade
//! Do the TODOs in order: each one not done stops the program and says which it is.
#![allow(unused_imports, unused_variables, unused_mut, unreachable_code, dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

fn todo(tag: &str, what: &str) -> ! {
    eprintln!("TODO({tag}) not done: {what} (see README.md)");
    std::process::exit(1)
}

struct Args {
    role: String,
    port: u16,
    host: String,
    message: String,
}

/// The server's address: a name (h2) or a dotted address, resolved.
fn server_address(a: &Args) -> SocketAddr {
    match (a.host.as_str(), a.port).to_socket_addrs().map(|mut i| i.next()) {
        Ok(Some(addr)) => addr,
        _ => {
            eprintln!("{}: cannot resolve {}", a.role, a.host);
            std::process::exit(1)
        }
    }
}

/// The socket `bind` makes, bound to every address on the port; a port in use (or refused) is
/// one line on stderr and exit status 1.
fn bound<T>(a: &Args, bind: impl FnOnce(SocketAddr) -> std::io::Result<T>) -> T {
    let at = SocketAddr::from(([0, 0, 0, 0], a.port));
    // TODO(lab8.1): match bind(at): Ok(sock) gives it back; Err(e): print "ROLE: bind port P: REASON" on stderr, exit(1) | fr: match bind(at) : Ok(sock) la rend ; Err(e) : afficher « ROLE: bind port P: RAISON » sur stderr, exit(1)
    todo("lab8.1", "bind the port, or say why not in one line");
    // END TODO(lab8.1)
}

fn udp_server(a: &Args) {
    let sock = bound(a, |at| UdpSocket::bind(at));
    let mut buf = [0u8; 2048];
    // TODO(lab8.2): loop: recv_from, print the text and the source "IP:PORT", send_to(b"OK", source) | fr: boucle : recv_from, afficher le texte et la source « IP:PORT », send_to(b"OK", source)
    todo("lab8.2", "receive, show the source, answer OK");
    // END TODO(lab8.2)
}

fn udp_client(a: &Args) {
    let to = server_address(a);
    let sock = UdpSocket::bind(("0.0.0.0", 0)).unwrap_or_else(|e| {
        eprintln!("udp-client: bind: {e}");
        std::process::exit(1)
    });
    let mut buf = [0u8; 2048];
    // TODO(lab8.3): send_to the message, wait for the answer (set_read_timeout 5 s, recv_from), print it | fr: send_to du message, attendre la réponse (set_read_timeout 5 s, recv_from), l'afficher
    todo("lab8.3", "send a datagram, print the answer");
    // END TODO(lab8.3)
}

/// One client: a line in, OK out, until it closes (read returns 0) or vanishes (reset).
fn serve(mut c: TcpStream, who: SocketAddr) {
    let mut buf = [0u8; 1024];
    let mut line: Vec<u8> = Vec::new();
    // TODO(lab8.4): loop on read: Ok(0) means the client closed, Err it vanished: return (dropping c closes it); for each whole line print it and write_all(b"OK\n") | fr: boucle sur read : Ok(0) veut dire que le client a fermé, Err qu'il a disparu : rendre (lâcher c la ferme) ; pour chaque ligne entière l'afficher et write_all(b"OK\n")
    todo("lab8.4", "serve one client until it closes");
    // END TODO(lab8.4)
}

fn tcp_server(a: &Args) {
    // TcpListener::bind is socket, bind and listen (backlog 128) in one call.
    let l = bound(a, |at| TcpListener::bind(at));
    // TODO(lab8.5): forever: let (c, who) = l.accept(); serve(c, who) | fr: sans fin : let (c, who) = l.accept() ; serve(c, who)
    todo("lab8.5", "accept clients");
    // END TODO(lab8.5)
}

fn tcp_client(a: &Args) {
    let to = server_address(a);
    let mut buf = [0u8; 1024];
    // TODO(lab8.6): TcpStream::connect, write the message and "\n", read until a newline (or 0), print the answer, drop the stream (close first) | fr: TcpStream::connect, écrire le message et « \n », lire jusqu'à un saut de ligne (ou 0), afficher la réponse, lâcher le flux (fermer en premier)
    todo("lab8.6", "connect, send a line, print the answer, close");
    // END TODO(lab8.6)
}

fn parse() -> Args {
    let usage = || -> ! {
        eprintln!("usage: lab8 udp-server|udp-client|tcp-server|tcp-client --port P [--host H --message M]");
        std::process::exit(2)
    };
    let mut it = std::env::args().skip(1);
    let role = it.next().unwrap_or_else(|| usage());
    let mut a = Args { role, port: 0, host: "127.0.0.1".into(), message: "hello".into() };
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| usage());
        match k.as_str() {
            "--port" => a.port = v.parse().unwrap_or_else(|_| usage()),
            "--host" => a.host = v,
            "--message" => a.message = v,
            _ => usage(),
        }
    }
    if a.port == 0 {
        usage();
    }
    a
}

fn main() {
    let a = parse();
    match a.role.as_str() {
        "udp-server" => udp_server(&a),
        "udp-client" => udp_client(&a),
        "tcp-server" => tcp_server(&a),
        "tcp-client" => tcp_client(&a),
        _ => {
            eprintln!("unknown role {}", a.role);
            std::process::exit(2)
        }
    }
}
