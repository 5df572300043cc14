//! Lab 9 starter: a finger daemon and its client, one program, the role as first argument.
//!
//! The lab text: labs/lab9-fingerd/README.md (the grading contract is at its end).
//! Run it:   mkdir -m 700 d; cargo run -- fingerd --port 7979 --dir d; cargo run -- fingercli --login $USER --host 127.0.0.1 --port 7979
//! Grade it: make grade
//! Do the TODOs in order: each one not done stops the program and says which it is.
#![allow(unused_imports, unused_variables, unused_mut, unreachable_code, dead_code)]

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout, fork, pipe, read, setsid, write, ForkResult};
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

/// The pidfile's path, set before any signal can come (the handler only reads it).
static PIDFILE: OnceLock<CString> = OnceLock::new();

fn todo(tag: &str, what: &str) -> ! {
    eprintln!("TODO({tag}) not done: {what} (see README.md)");
    std::process::exit(1)
}

/// A login: letters, digits, _ . - (not first), at most 32. Anything else never reaches finger.
fn is_login(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && !s.starts_with(['-', '.'])
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

extern "C" fn on_term(_: libc::c_int) {
    // Only async-signal-safe calls: unlink(2) and _exit(2).
    if let Some(p) = PIDFILE.get() {
        unsafe { libc::unlink(p.as_ptr()) };
    }
    unsafe { libc::_exit(0) }
}

/// A listening socket on every address; a port in use is one line and exit status 1.
fn listen(port: u16) -> TcpListener {
    // TODO(lab9.1): TcpListener::bind(("0.0.0.0", port)); on Err print "fingerd: bind port P: ERROR" on stderr and exit(1) | fr: TcpListener::bind(("0.0.0.0", port)) ; sur Err afficher « fingerd: bind port P: ERREUR » sur stderr et exit(1)
    todo("lab9.1", "bind and listen, or say why not in one line");
    // END TODO(lab9.1)
}

/// The launcher returns once the daemon runs: fork; the parent waits for the child's word on a
/// pipe and exits 0; the child calls setsid, puts /dev/null on 0, 1, 2, writes its pid.
fn daemonize(pidfile: &str) {
    // TODO(lab9.2): let (r, w) = pipe(); fork: the parent drops w, read(&r) one byte, _exit(0). The child: setsid(); /dev/null onto 0, 1, 2 (dup2_stdin...); write its pid (std::process::id()) to pidfile; write one byte to w | fr: let (r, w) = pipe() ; fork : le père lâche w, read(&r) d'un octet, _exit(0). L'enfant : setsid() ; /dev/null sur 0, 1, 2 (dup2_stdin...) ; écrire son pid (std::process::id()) dans pidfile ; écrire un octet sur w
    todo("lab9.2", "become a daemon and write the pidfile");
    // END TODO(lab9.2)
}

/// The query line (RFC 1288: up to CRLF), or None if it is not a login.
fn read_query(conn: &mut TcpStream) -> Option<String> {
    // TODO(lab9.3): read until a b'\n' is there (or 0, or over 512 bytes); keep what is before it, drop a '\r'; None on a NUL byte, on bytes that are not UTF-8, or unless is_login | fr: lire jusqu'à avoir un b'\n' (ou 0, ou plus de 512 octets) ; garder ce qui le précède, ôter un '\r' ; None sur un octet NUL, des octets qui ne sont pas de l'UTF-8, ou sauf si is_login
    todo("lab9.3", "read the query line and check it is a login");
    // END TODO(lab9.3)
}

/// One client: its query, finger's answer (never through a shell), a log line, close.
fn answer(mut conn: TcpStream, peer: SocketAddr, log: &Mutex<File>) {
    let login = read_query(&mut conn);
    // TODO(lab9.4): writeln!(log.lock(), "{login:?} from {peer}"). None: write b"fingerd: not a login\r\n". Else Command::new("/usr/bin/finger").args(["-l", "-m", "--", &login]).output(); write stdout then stderr with each b'\n' sent as b"\r\n". The socket closes when conn is dropped | fr: writeln!(log.lock(), "{login:?} from {peer}"). None : écrire b"fingerd: not a login\r\n". Sinon Command::new("/usr/bin/finger").args(["-l", "-m", "--", &login]).output() ; écrire stdout puis stderr en envoyant chaque b'\n' comme b"\r\n". La socket se ferme quand conn est lâché
    todo("lab9.4", "answer with finger's output from an argv, log, close");
    // END TODO(lab9.4)
}

fn fingerd(port: u16, dir: &str) -> i32 {
    let pidfile = format!("{dir}/fingerd.pid");
    let _ = PIDFILE.set(CString::new(pidfile.clone()).unwrap_or_default());
    let listener = listen(port);
    daemonize(&pidfile);
    let Ok(log) = OpenOptions::new().create(true).append(true).open(format!("{dir}/fingerd.log")) else {
        return 1;
    };
    let log = Arc::new(Mutex::new(log));
    // TODO(lab9.5): sigaction(SIGTERM) with SigHandler::Handler(on_term); then for each accept(): a std::thread::spawn running answer(conn, peer, &log) | fr: sigaction(SIGTERM) avec SigHandler::Handler(on_term) ; puis pour chaque accept() : un std::thread::spawn qui lance answer(conn, peer, &log)
    todo("lab9.5", "stop on SIGTERM; accept, a thread per client");
    // END TODO(lab9.5)
}

fn fingercli(login: &str, host: &str, port: u16) -> i32 {
    // TODO(lab9.6): TcpStream::connect((host, port)); Err: one line on stderr, return 1. write login then "\r\n"; read into a 4096-byte buffer until it returns 0, writing each piece to stdout | fr: TcpStream::connect((hôte, port)) ; Err : une ligne sur stderr, rendre 1. écrire login puis "\r\n" ; lire dans un tampon de 4096 octets jusqu'à ce que read rende 0, en écrivant chaque morceau sur stdout
    todo("lab9.6", "connect, send the login, print the whole answer");
    // END TODO(lab9.6)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let role = args.get(1).cloned().unwrap_or_default();
    let port = match opt("--port").unwrap_or_else(|| "7979".into()).parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => {
            eprintln!("{role}: --port: not a port");
            std::process::exit(2)
        }
    };
    let code = match role.as_str() {
        "fingerd" => match opt("--dir") {
            Some(d) => fingerd(port, &d),
            None => {
                eprintln!("fingerd needs --dir DIR (yours alone: mkdir -m 700 DIR)");
                2
            }
        },
        "fingercli" => fingercli(
            &opt("--login").unwrap_or_default(),
            &opt("--host").unwrap_or_else(|| "127.0.0.1".into()),
            port,
        ),
        _ => {
            eprintln!("usage: lab9 fingerd|fingercli [--port P] [--dir D] [--login L] [--host H]");
            2
        }
    };
    std::process::exit(code)
}
