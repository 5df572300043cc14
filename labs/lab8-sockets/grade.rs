//! Lab 8's grading: each role run in turn, the grader playing the other side of each with its
//! own sockets. As root the run has a network namespace of its own (every launch joins it, the
//! grader's sockets are made in it, and the grader can hold a port before a server starts);
//! otherwise the machine's loopback, on ports the kernel says are free.

use crate::error::{Error, Result};
use crate::grade::harness::{self, Action, Launch, Outcome, Script, View};
use crate::grade::net::RunNet as Net;
use crate::grade::report::Check;
use crate::grade::{interrupted_error, RunEnv, RunResult};
use nix::sys::signal::Signal;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The sheet's ports, in the run's own namespace; free ones on a shared network.
const UDP_PORT: u16 = 9875;
const TCP_PORT: u16 = 9876;

/// What the grader saw of one server run.
#[derive(Default, Clone)]
struct ServerSeen {
    /// The tree held a socket of the right kind on the port: (pid, "UDP"/"TCP").
    holder: Option<i32>,
    /// A socket of the other kind on the port (a UDP server that listens on TCP...).
    wrong_kind: bool,
    never_bound: bool,
    /// Per datagram or line: (source port, payload, Ok or what went wrong).
    answers: Vec<(u16, String, std::result::Result<(), String>)>,
    /// TCP: after the client's close (FIN), the server closed too.
    closed_after_client: Option<std::result::Result<(), String>>,
    /// TCP: a client reset mid-line, then another was served.
    after_vanish: Option<std::result::Result<(), String>>,
    /// Still running `term` after SIGTERM: killed.
    ignored_term: bool,
}

/// What the grader saw of one client run.
#[derive(Default, Clone)]
struct ClientSeen {
    /// The message received, or why none.
    got: Option<std::result::Result<String, String>>,
    /// TCP: the client closed before the grader did.
    closed_first: Option<std::result::Result<(), String>>,
}

struct Bounds {
    bind: Duration,
    answer: Duration,
    close: Duration,
    refuse: Duration,
    term: Duration,
}

pub fn run(env: &RunEnv) -> Result<RunResult> {
    let c = env.contract;
    let params = crate::grade::params_for(env.seed, c);
    let k = params.get("K").copied().unwrap_or(2) as usize;
    let words = payloads(env.seed, k);
    let b = Bounds {
        bind: Duration::from_millis(c.bound_ms("bind_ms", 5000)),
        answer: Duration::from_millis(c.bound_ms("answer_ms", 2000)),
        close: Duration::from_millis(c.bound_ms("close_ms", 1000)),
        refuse: Duration::from_millis(c.bound_ms("refuse_ms", 5000)),
        term: Duration::from_millis(c.bound_ms("term_ms", 2000)),
    };
    let root = env.new_box()?;
    let net = Net::new()?;
    let launch = |role: &str, args: &[String]| -> Result<Launch> {
        let mut l = env.launch_role(role, args, &root)?;
        net.apply(&mut l);
        Ok(l)
    };
    let mut phases: Vec<(&'static str, Outcome)> = Vec::new();
    let host = "127.0.0.1".to_string();

    // A server's run also lasts while the grader waits for its answers: that time is the
    // grader's, added to the program's budget (which then counts from SIGTERM, in effect).
    let waits = b.bind + b.answer * (k as u32 + 3) + b.close * 2;
    let server = |role: &str, port: u16| -> Result<Launch> {
        let mut l = launch(role, &port_args(port))?;
        l.timeout += waits;
        Ok(l)
    };
    // Each protocol in turn: its server (UDP: datagrams from several source ports, each to be
    // answered OK; TCP: lines lock-step, the client's close, a client that vanishes), the same
    // server given a port the grader holds, then its client against the grader's socket.
    let mut seen: Vec<(ServerSeen, ClientSeen)> = Vec::new();
    for (proto, sheet) in [(Proto::Udp, UDP_PORT), (Proto::Tcp, TCP_PORT)] {
        let (server_role, client_role) = proto.roles();
        let port = net.port(sheet)?;
        let mut s = ServerScript::new(proto, port, &net, &b, words.clone());
        step(
            &mut phases,
            server_role,
            server(server_role, port)?,
            Some(&mut s),
        )?;
        let served = s.finish();
        refused(&net, proto, sheet + 10, &b, &launch, &mut phases)?;
        let port = net.port(sheet + 1)?;
        let bind_err = |e: std::io::Error| Error::io(&e, "bind", port).with_code(3);
        let peer = match proto {
            Proto::Udp => Peer::Udp(
                net.run(|| UdpSocket::bind(("127.0.0.1", port)))?
                    .map_err(bind_err)?,
            ),
            Proto::Tcp => Peer::Tcp(
                net.run(|| TcpListener::bind(("127.0.0.1", port)))?
                    .map_err(bind_err)?,
            ),
        };
        let mut cs = ClientScript::new(peer, &net, &b);
        let args = client_args(&host, port, &words[0]);
        step(
            &mut phases,
            client_role,
            launch(client_role, &args)?,
            Some(&mut cs),
        )?;
        seen.push((served, cs.finish()));
    }
    let (udp_seen, udp_client) = seen.remove(0);
    let (tcp_seen, tcp_client) = seen.remove(0);

    let checks = judge(c, &phases, &udp_seen, &udp_client, &tcp_seen, &tcp_client);
    let failed = checks.iter().any(|c| !c.passed && !c.skipped);
    let transcript = if failed {
        env.transcript(&transcript_text(env, &phases, &checks))
    } else {
        None
    };
    let mut r = env.result(
        &root,
        &phases,
        checks,
        transcript,
        vec![net.protection()],
        &launch("udp-server", &port_args(UDP_PORT))?,
    );
    r.run.params.insert("K".into(), (k as u64).into());
    Ok(r)
}

/// One launch to its end, the script acting meanwhile; an interrupted grader stops here.
fn step(
    phases: &mut Vec<(&'static str, Outcome)>,
    name: &'static str,
    l: Launch,
    script: Option<&mut dyn Script>,
) -> Result<()> {
    let out = harness::run_scripted(&l, script).map_err(|e| Error::runtime(e.0).with_code(3))?;
    if let Some(sig) = out.interrupted {
        return Err(interrupted_error(sig));
    }
    phases.push((name, out));
    Ok(())
}

fn port_args(port: u16) -> Vec<String> {
    vec!["--port".into(), port.to_string()]
}

fn client_args(host: &str, port: u16, msg: &str) -> Vec<String> {
    vec![
        "--host".into(),
        host.into(),
        "--port".into(),
        port.to_string(),
        "--message".into(),
        msg.into(),
    ]
}

/// K words from the run's seed: what the grader sends (so a seed replays its run).
fn payloads(seed: u64, k: usize) -> Vec<String> {
    use rand::{RngExt, SeedableRng};
    const WORDS: &[&str] = &[
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
        "juliett", "kilo", "lima",
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x1ab8);
    (0..k)
        .map(|i| format!("{}-{i}", WORDS[rng.random_range(0..WORDS.len())]))
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Proto {
    Udp,
    Tcp,
}

impl Proto {
    /// Its server's and its client's role names (the phases are named after them).
    fn roles(self) -> (&'static str, &'static str) {
        match self {
            Proto::Udp => ("udp-server", "udp-client"),
            Proto::Tcp => ("tcp-server", "tcp-client"),
        }
    }

    fn table(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

/// The server's port bound by a process of the tree: (holder pid, right kind?). Read from the
/// tables of main's network namespace, held sockets matched by inode through /proc/PID/fd.
fn bound_by_tree(v: &View<'_>, proto: Proto, port: u16) -> Option<(i32, bool)> {
    let entries = |table: &str| -> Vec<crate::inet::SockEntry> {
        let text =
            std::fs::read_to_string(format!("/proc/{}/net/{table}", v.main)).unwrap_or_default();
        crate::inet::parse_table(&text, table == "udp")
    };
    let held = |inode: u64| -> Option<i32> {
        let want = format!("socket:[{inode}]");
        v.procs.keys().copied().find(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|rd| {
                    rd.flatten().any(|e| {
                        std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy() == want)
                    })
                })
                .unwrap_or(false)
        })
    };
    let ready = |e: &crate::inet::SockEntry, udp: bool| {
        e.local.port() == port && (udp || e.state == "LISTEN")
    };
    for (table, right) in [
        (proto.table(), true),
        (if proto == Proto::Udp { "tcp" } else { "udp" }, false),
    ] {
        for e in entries(table).iter().filter(|e| ready(e, table == "udp")) {
            if let Some(pid) = held(e.inode) {
                return Some((pid, right));
            }
        }
    }
    None
}

enum Stage {
    WaitBind,
    Peer(JoinHandle<ServerSeen>),
    /// SIGTERM sent at this time.
    Stopping(Duration),
    Killed,
}

/// Acts while a server runs: waits for its port, plays its clients on a thread, then SIGTERM.
struct ServerScript<'a> {
    proto: Proto,
    port: u16,
    net: &'a Net,
    b: &'a Bounds,
    words: Vec<String>,
    stage: Stage,
    seen: ServerSeen,
}

impl<'a> ServerScript<'a> {
    fn new(proto: Proto, port: u16, net: &'a Net, b: &'a Bounds, words: Vec<String>) -> Self {
        ServerScript {
            proto,
            port,
            net,
            b,
            words,
            stage: Stage::WaitBind,
            seen: ServerSeen::default(),
        }
    }

    fn finish(mut self) -> ServerSeen {
        if let Stage::Peer(h) = std::mem::replace(&mut self.stage, Stage::Killed) {
            if let Ok(s) = h.join() {
                self.merge(s);
            }
        }
        self.seen
    }

    fn merge(&mut self, s: ServerSeen) {
        self.seen.answers = s.answers;
        self.seen.closed_after_client = s.closed_after_client;
        self.seen.after_vanish = s.after_vanish;
    }
}

impl Script for ServerScript<'_> {
    fn tick(&mut self, v: &View<'_>) -> Vec<Action> {
        if v.main_end.is_some() {
            return vec![];
        }
        match &self.stage {
            Stage::WaitBind => {
                if let Some((pid, right)) = bound_by_tree(v, self.proto, self.port) {
                    if !right {
                        self.seen.wrong_kind = true;
                        self.stage = Stage::Stopping(v.t);
                        return vec![Action::Signal(v.main, Signal::SIGTERM)];
                    }
                    self.seen.holder = Some(pid);
                    let (proto, port, words) = (self.proto, self.port, self.words.clone());
                    let answer = self.b.answer;
                    let close = self.b.close;
                    let h = self.net.spawn(move || match proto {
                        Proto::Udp => udp_clients(port, &words, answer),
                        Proto::Tcp => tcp_clients(port, &words, answer, close),
                    });
                    self.stage = Stage::Peer(h);
                } else if v.t > self.b.bind {
                    self.seen.never_bound = true;
                    self.stage = Stage::Stopping(v.t);
                    return vec![Action::Signal(v.main, Signal::SIGTERM)];
                }
                vec![]
            }
            Stage::Peer(h) if h.is_finished() => {
                if let Stage::Peer(h) = std::mem::replace(&mut self.stage, Stage::Stopping(v.t)) {
                    if let Ok(s) = h.join() {
                        self.merge(s);
                    }
                }
                vec![Action::Signal(v.main, Signal::SIGTERM)]
            }
            // A server that outlives SIGTERM by the contract's term_ms is killed, and told.
            Stage::Stopping(at) if v.t > *at + self.b.term => {
                self.seen.ignored_term = true;
                self.stage = Stage::Killed;
                vec![Action::Signal(v.main, Signal::SIGKILL)]
            }
            _ => vec![],
        }
    }
}

/// One UDP socket per word (each its own source port), all sent at once, each datagram to be
/// answered OK from the server's port within answer_ms of the sending.
fn udp_clients(port: u16, words: &[String], answer: Duration) -> ServerSeen {
    let mut seen = ServerSeen::default();
    let mut sent: Vec<(UdpSocket, u16, &String)> = Vec::new();
    for w in words {
        let made = UdpSocket::bind(("127.0.0.1", 0)).and_then(|s| {
            s.send_to(w.as_bytes(), ("127.0.0.1", port))?;
            Ok(s)
        });
        match made {
            Ok(s) => {
                let me = s.local_addr().map(|a| a.port()).unwrap_or(0);
                sent.push((s, me, w));
            }
            Err(e) => seen.answers.push((0, w.clone(), Err(e.to_string()))),
        }
    }
    let deadline = Instant::now() + answer;
    for (s, me, w) in sent {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let _ = s.set_read_timeout(Some(left));
        let mut buf = [0u8; 512];
        let r = match s.recv_from(&mut buf) {
            Err(_) => Err(tf!(
                "no answer within {} ms",
                "pas de réponse en {} ms",
                answer.as_millis()
            )),
            Ok((n, from)) => {
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                if text.trim_end() != "OK" {
                    Err(tf!(
                        "answered {text:?}, not \"OK\"",
                        "a répondu {text:?}, pas \"OK\""
                    ))
                } else if from.port() != port {
                    Err(tf!(
                        "the OK came from port {}, not the server's {port}",
                        "le OK est venu du port {}, pas de celui du serveur {port}",
                        from.port()
                    ))
                } else {
                    Ok(())
                }
            }
        };
        seen.answers.push((me, w.clone(), r));
    }
    seen
}

/// Reads until `buf` holds "OK" (and what follows on its line), within `limit`.
fn read_ok(s: &mut TcpStream, limit: Duration) -> std::result::Result<(), String> {
    let deadline = Instant::now() + limit;
    let mut got: Vec<u8> = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        if got.windows(2).any(|w| w == b"OK") {
            // A newline after it is optional: take it if it is already here.
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(tf!(
                "no OK within {} ms (got {:?})",
                "pas de OK en {} ms (reçu {:?})",
                limit.as_millis(),
                String::from_utf8_lossy(&got)
            ));
        }
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut buf) {
            Ok(0) => {
                return Err(tf!(
                    "the server closed the connection before answering (got {:?})",
                    "le serveur a fermé la connexion avant de répondre (reçu {:?})",
                    String::from_utf8_lossy(&got)
                ))
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => {
                return Err(tf!(
                    "no OK within {} ms (got {:?})",
                    "pas de OK en {} ms (reçu {:?})",
                    limit.as_millis(),
                    String::from_utf8_lossy(&got)
                ))
            }
        }
    }
}

/// Waits for end of stream (the peer closed): Ok, or what came instead.
fn read_eof(s: &mut TcpStream, limit: Duration) -> std::result::Result<(), String> {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(String::new());
        }
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            // Late bytes (a trailing newline) are not a close: read on.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
            Err(_) => return Err(String::new()),
        }
    }
}

fn connect(port: u16, limit: Duration) -> std::result::Result<TcpStream, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, limit).map_err(|e| {
        tf!(
            "connect to port {port}: {e}",
            "connect au port {port} : {e}"
        )
    })
}

/// A client sends each word as a line and waits for its OK; closes its side and waits for the
/// server to close too; a second client resets mid-line; a third must still be served.
fn tcp_clients(port: u16, words: &[String], answer: Duration, close: Duration) -> ServerSeen {
    let mut seen = ServerSeen::default();
    let mut c = match connect(port, answer) {
        Ok(c) => c,
        Err(e) => {
            seen.answers = words
                .iter()
                .map(|w| (0, w.clone(), Err(e.clone())))
                .collect();
            return seen;
        }
    };
    let me = c.local_addr().map(|a| a.port()).unwrap_or(0);
    let mut broken = false;
    for w in words {
        if broken {
            seen.answers.push((
                me,
                w.clone(),
                Err(tf!(
                    "not sent: an earlier line failed",
                    "pas envoyée : une ligne précédente a échoué"
                )),
            ));
            continue;
        }
        let r = c
            .write_all(format!("{w}\n").as_bytes())
            .map_err(|e| e.to_string())
            .and_then(|_| read_ok(&mut c, answer));
        broken = r.is_err();
        seen.answers.push((me, w.clone(), r));
    }
    if !broken {
        let _ = c.shutdown(std::net::Shutdown::Write);
        seen.closed_after_client = Some(read_eof(&mut c, close).map_err(|_| {
            tf!(
                "after the client's close (its FIN: the server's recv returns 0), the server did not close its side within {} ms",
                "après la fermeture du client (son FIN : le recv du serveur rend 0), le serveur n'a pas fermé son côté en {} ms",
                close.as_millis()
            )
        }));
    }
    drop(c);
    seen.after_vanish = Some((|| {
        let v = connect(port, answer)?;
        let mut v = v;
        let _ = v.write_all(b"half a li");
        let fd = std::os::fd::AsFd::as_fd(&v);
        let _ = nix::sys::socket::setsockopt(
            &fd,
            nix::sys::socket::sockopt::Linger,
            &libc::linger {
                l_onoff: 1,
                l_linger: 0,
            },
        );
        drop(v);
        let mut next = connect(port, answer).map_err(|e| {
            tf!(
                "after a client reset mid-line, {e}: the server is gone",
                "après un client qui a réinitialisé en pleine ligne, {e} : le serveur n'est plus là"
            )
        })?;
        next.write_all(b"again\n").map_err(|e| e.to_string())?;
        read_ok(&mut next, answer).map_err(|e| {
            tf!(
                "after a client reset mid-line, the next client got {e}",
                "après un client qui a réinitialisé en pleine ligne, le client suivant : {e}"
            )
        })?;
        let _ = next.shutdown(std::net::Shutdown::Write);
        let _ = read_eof(&mut next, close);
        Ok(())
    })());
    seen
}

/// The grader holds `port` (bound, and listening for TCP), then starts the server on it: it
/// must say so in one line and exit 1.
fn refused(
    net: &Net,
    proto: Proto,
    sheet: u16,
    b: &Bounds,
    launch: &dyn Fn(&str, &[String]) -> Result<Launch>,
    phases: &mut Vec<(&'static str, Outcome)>,
) -> Result<()> {
    let port = net.port(sheet)?;
    let role = proto.roles().0;
    let name = match proto {
        Proto::Udp => "udp-server (port in use)",
        Proto::Tcp => "tcp-server (port in use)",
    };
    // Held on every address, without SO_REUSEADDR: a server's bind to it fails whatever it asks.
    let holder: Box<dyn std::any::Any + Send> = match proto {
        Proto::Udp => Box::new(
            net.run(|| UdpSocket::bind(("0.0.0.0", port)))?
                .map_err(|e| Error::io(&e, "bind", port).with_code(3))?,
        ),
        Proto::Tcp => Box::new(
            net.run(|| TcpListener::bind(("0.0.0.0", port)))?
                .map_err(|e| Error::io(&e, "bind", port).with_code(3))?,
        ),
    };
    let mut l = launch(role, &port_args(port))?;
    l.timeout = b.refuse;
    step(phases, name, l, None)?;
    drop(holder);
    Ok(())
}

enum Peer {
    Udp(UdpSocket),
    Tcp(TcpListener),
}

/// Acts while a client runs: the grader's socket waits for it on a thread (started after the
/// fork: the box's first process must come from a single-threaded grader).
struct ClientScript<'a> {
    peer: Option<Peer>,
    b: &'a Bounds,
    h: Option<JoinHandle<ClientSeen>>,
    /// Dropped once the client has ended: its peer thread stops waiting then, not at the bound.
    ended: Option<OwnedFd>,
    seen: ClientSeen,
    _net: &'a Net,
}

impl<'a> ClientScript<'a> {
    fn new(peer: Peer, net: &'a Net, b: &'a Bounds) -> Self {
        ClientScript {
            peer: Some(peer),
            b,
            h: None,
            ended: None,
            seen: ClientSeen::default(),
            _net: net,
        }
    }

    fn finish(mut self) -> ClientSeen {
        drop(self.ended.take());
        if let Some(h) = self.h.take() {
            if let Ok(s) = h.join() {
                self.seen = s;
            }
        }
        self.seen
    }
}

impl Script for ClientScript<'_> {
    fn tick(&mut self, _v: &View<'_>) -> Vec<Action> {
        if let Some(peer) = self.peer.take() {
            let (wait, answer) = (self.b.bind + self.b.answer, self.b.answer);
            let Ok((ended_r, ended_w)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
                return vec![];
            };
            self.ended = Some(ended_w);
            self.h = Some(std::thread::spawn(move || match peer {
                Peer::Udp(s) => udp_peer(s, &ended_r, wait),
                Peer::Tcp(l) => tcp_peer(l, &ended_r, wait, answer),
            }));
        }
        vec![]
    }
}

/// Until `sock` is readable (true), or the client has ended (`ended` readable: its write end
/// dropped) or `wait` passed with nothing for it (false). What an ended client sent is queued
/// already (loopback delivers within the send, and a connect completes within the call).
fn peer_ready(sock: &impl std::os::fd::AsFd, ended: &OwnedFd, wait: Duration) -> bool {
    use std::os::fd::AsFd;
    match crate::signals::poll_fds(&[sock.as_fd(), ended.as_fd()], Some(wait)) {
        Ok(r) if r.first() == Some(&true) => true,
        Ok(r) if r.get(1) == Some(&true) => {
            crate::signals::poll_fds(&[sock.as_fd()], Some(Duration::ZERO))
                .is_ok_and(|r| r.first() == Some(&true))
        }
        _ => false,
    }
}

fn udp_peer(s: UdpSocket, ended: &OwnedFd, wait: Duration) -> ClientSeen {
    let mut seen = ClientSeen::default();
    let mut buf = [0u8; 65536];
    let got = if peer_ready(&s, ended, wait) {
        s.recv_from(&mut buf)
    } else {
        Err(std::io::ErrorKind::TimedOut.into())
    };
    seen.got = Some(match got {
        Ok((n, from)) => {
            let _ = s.send_to(b"OK", from);
            Ok(String::from_utf8_lossy(&buf[..n]).to_string())
        }
        Err(_) => Err(tf!(
            "no datagram reached the grader's UDP socket before the client ended (or within {} ms)",
            "aucun datagramme n'a atteint la socket UDP du correcteur avant la fin du client (ni en {} ms)",
            wait.as_millis()
        )),
    });
    seen
}

fn tcp_peer(l: TcpListener, ended: &OwnedFd, wait: Duration, answer: Duration) -> ClientSeen {
    let mut seen = ClientSeen::default();
    let Ok((mut c, _)) = (if peer_ready(&l, ended, wait) {
        l.accept()
    } else {
        Err(std::io::ErrorKind::TimedOut.into())
    }) else {
        seen.got = Some(Err(tf!(
            "no connection reached the grader's TCP socket before the client ended (or within {} ms)",
            "aucune connexion n'a atteint la socket TCP du correcteur avant la fin du client (ni en {} ms)",
            wait.as_millis()
        )));
        return seen;
    };
    // The message: up to its newline (or the client's close).
    let mut line: Vec<u8> = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + answer;
    let mut closed = false;
    while !line.contains(&b'\n') {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let _ = c.set_read_timeout(Some(left));
        match c.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => line.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&line).trim_end().to_string();
    seen.got = Some(if text.is_empty() {
        Err(tf!("the client sent nothing", "le client n'a rien envoyé"))
    } else {
        Ok(text)
    });
    let _ = c.write_all(b"OK\n");
    seen.closed_first = Some(if closed {
        Err(tf!(
            "the client closed before the answer: it must read the OK first",
            "le client a fermé avant la réponse : il doit d'abord lire le OK"
        ))
    } else {
        read_eof(&mut c, answer).map_err(|_| {
            tf!(
                "the client did not close within {} ms of the OK: the client closes first",
                "le client n'a pas fermé dans les {} ms suivant le OK : c'est le client qui ferme le premier",
                answer.as_millis()
            )
        })
    });
    seen
}

/// A check with the contract's points.
fn check(
    c: &crate::spec::Contract,
    name: &str,
    passed: bool,
    skipped: bool,
    detail: String,
) -> Check {
    let max = c.points.get(name).copied().unwrap_or(1);
    Check {
        name: name.into(),
        passed,
        skipped,
        detail,
        points: if passed { max } else { 0 },
        max_points: max,
        secs: 0.0,
    }
}

/// One line on stderr and status 1, within the bound — judged only of a server that bound a free
/// port: any program that stops at once with one line and status 1 would pass otherwise.
fn judge_refused(
    c: &crate::spec::Contract,
    name: &str,
    out: Option<&Outcome>,
    served: &ServerSeen,
) -> Check {
    if served.holder.is_none() {
        return check(
            c,
            name,
            false,
            true,
            tf!(
                "skipped: the server never bound a free port, so its exit on a held one proves nothing",
                "non jugé : le serveur n'a jamais associé un port libre, sa sortie sur un port tenu ne prouve donc rien"
            ),
        );
    }
    let Some(out) = out else {
        return check(
            c,
            name,
            false,
            true,
            tf!("skipped: not run", "non jugé : pas lancé"),
        );
    };
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    let code = out.main_status.map(|s| crate::process::shell_status(&s));
    let (ok, detail) = if out.timed_out {
        (
            false,
            tf!(
            "given a port already in use, the server did not exit (it must say so and exit 1)",
            "sur un port déjà utilisé, le serveur n'a pas fini (il doit le dire et finir avec 1)"
        ),
        )
    } else if code != Some(1) {
        (
            false,
            tf!(
                "given a port already in use, the server exited {}: want 1{}",
                "sur un port déjà utilisé, le serveur a fini avec {} : 1 attendu{}",
                code.map_or("?".into(), |c| c.to_string()),
                crate::grade::checks::stderr_tail(out)
            ),
        )
    } else if lines.len() != 1 {
        (false, tf!(
            "given a port already in use, the server wrote {} lines on stderr: want one line saying what failed (a traceback is not one)",
            "sur un port déjà utilisé, le serveur a écrit {} lignes sur stderr : une ligne qui dit ce qui a échoué est attendue (une trace d'appels n'en est pas une)",
            lines.len()
        ))
    } else {
        (
            true,
            tf!(
                "one line, status 1: {:?}",
                "une ligne, statut 1 : {:?}",
                lines[0]
            ),
        )
    };
    check(c, name, ok, false, detail)
}

#[allow(clippy::too_many_arguments)]
fn judge(
    c: &crate::spec::Contract,
    phases: &[(&str, Outcome)],
    udp: &ServerSeen,
    udp_client: &ClientSeen,
    tcp: &ServerSeen,
    tcp_client: &ClientSeen,
) -> Vec<Check> {
    let phase = |n: &str| phases.iter().find(|(p, _)| *p == n).map(|(_, o)| o);
    let mut v = Vec::new();
    let sep = crate::lang::sep();
    // A server's socket kind, from the tables and the tree's descriptors.
    let kind =
        |seen: &ServerSeen, name: &str, want: &str, other: &str, out: Option<&Outcome>| {
            let (ok, d) =
                if seen.wrong_kind {
                    (
                        false,
                        tf!(
                "the port is held by a {other} socket: a {want} server uses {}",
                "le port est tenu par une socket {other} : un serveur {want} utilise {}",
                if want == "UDP" { "SOCK_DGRAM" } else { "SOCK_STREAM" }
            ),
                    )
                } else if seen.never_bound {
                    (
                        false,
                        tf!(
                "no process of the tree bound the port within the contract's bind_ms{}",
                "aucun processus de l'arbre n'a associé le port dans le délai bind_ms du contrat{}",
                out.map(crate::grade::checks::stderr_tail).unwrap_or_default()
            ),
                    )
                } else if let Some(pid) = seen.holder {
                    (
                        true,
                        tf!(
                            "pid {pid} holds a {want} socket bound to the port",
                            "le pid {pid} tient une socket {want} associée au port"
                        ),
                    )
                } else {
                    (
                        false,
                        tf!(
                            "the server ended before binding its port{}",
                            "le serveur a fini avant d'associer son port{}",
                            out.map(crate::grade::checks::stderr_tail)
                                .unwrap_or_default()
                        ),
                    )
                };
            check(c, name, ok, false, d)
        };
    let answered = |seen: &ServerSeen, name: &str| {
        if seen.holder.is_none() {
            return check(
                c,
                name,
                false,
                true,
                tf!(
                    "skipped: no server to talk to",
                    "non jugé : pas de serveur à qui parler"
                ),
            );
        }
        let bad: Vec<String> = seen
            .answers
            .iter()
            .filter_map(|(_, w, r)| r.as_ref().err().map(|e| format!("{w:?}: {e}")))
            .collect();
        if bad.is_empty() && !seen.answers.is_empty() {
            check(
                c,
                name,
                true,
                false,
                tf!(
                    "{} messages, each answered OK",
                    "{} messages, chacun a reçu OK",
                    seen.answers.len()
                ),
            )
        } else {
            check(c, name, false, false, bad.join(sep))
        }
    };
    v.push(kind(
        udp,
        "udp-datagram-socket",
        "UDP",
        "TCP",
        phase("udp-server"),
    ));
    v.push(answered(udp, "udp-answers"));
    // The TP: print each message with its source address.
    let out = phase("udp-server")
        .map(|o| {
            o.stdout_lines
                .iter()
                .map(|(_, l)| l.clone())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let missing: Vec<String> = udp
        .answers
        .iter()
        .filter(|(port, w, _)| {
            !out.iter()
                .any(|l| l.contains(w.as_str()) && l.contains(&port.to_string()))
        })
        .map(|(port, w, _)| format!("{w:?} (port {port})"))
        .collect();
    v.push(if udp.answers.is_empty() {
        check(c, "udp-source-shown", false, true, tf!("skipped: no datagram was sent", "non jugé : aucun datagramme envoyé"))
    } else if missing.is_empty() {
        check(c, "udp-source-shown", true, false, tf!("each datagram printed with its source port", "chaque datagramme affiché avec son port source"))
    } else {
        check(c, "udp-source-shown", false, false, tf!(
            "no stdout line shows {}: print each datagram with its source address (IP and port)",
            "aucune ligne de stdout ne montre {} : affichez chaque datagramme avec son adresse source (IP et port)",
            missing.join(", ")
        ))
    });
    v.push(judge_refused(
        c,
        "udp-port-in-use",
        phase("udp-server (port in use)"),
        udp,
    ));
    v.push(client_check(
        c,
        "udp-client",
        udp_client,
        phase("udp-client"),
        None,
    ));
    v.push(kind(
        tcp,
        "tcp-stream-socket",
        "TCP",
        "UDP",
        phase("tcp-server"),
    ));
    v.push(answered(tcp, "tcp-answers"));
    v.push(match &tcp.closed_after_client {
        None => check(
            c,
            "tcp-sees-client-close",
            false,
            true,
            tf!(
                "skipped: the exchange before it failed",
                "non jugé : l'échange qui précède a échoué"
            ),
        ),
        Some(Ok(())) => check(
            c,
            "tcp-sees-client-close",
            true,
            false,
            tf!(
                "after the client's close the server closed its side",
                "après la fermeture du client, le serveur a fermé son côté"
            ),
        ),
        Some(Err(e)) => check(c, "tcp-sees-client-close", false, false, e.clone()),
    });
    v.push(match &tcp.after_vanish {
        None => check(
            c,
            "tcp-survives-vanished-client",
            false,
            true,
            tf!(
                "skipped: no server to talk to",
                "non jugé : pas de serveur à qui parler"
            ),
        ),
        Some(Ok(())) => check(
            c,
            "tcp-survives-vanished-client",
            true,
            false,
            tf!(
                "a client reset mid-line, and the next one was served",
                "un client a réinitialisé en pleine ligne, et le suivant a été servi"
            ),
        ),
        Some(Err(e)) => {
            // A server that died of the reset says why on stderr.
            let died = phase("tcp-server").and_then(|o| {
                let st = o.main_status?;
                let by_us = matches!(
                    st,
                    nix::sys::wait::WaitStatus::Signaled(_, Signal::SIGTERM, _)
                );
                (!by_us).then(|| {
                    tf!(
                        "; the server {} before the grader's SIGTERM{}",
                        " ; le serveur {} avant le SIGTERM du correcteur{}",
                        crate::process::describe(&st),
                        crate::grade::checks::stderr_tail(o)
                    )
                })
            });
            check(
                c,
                "tcp-survives-vanished-client",
                false,
                false,
                format!("{e}{}", died.unwrap_or_default()),
            )
        }
    });
    v.push(judge_refused(
        c,
        "tcp-port-in-use",
        phase("tcp-server (port in use)"),
        tcp,
    ));
    v.push(client_check(
        c,
        "tcp-client-closes-first",
        tcp_client,
        phase("tcp-client"),
        Some(&tcp_client.closed_first),
    ));
    // Every role ended, nothing left running after it.
    // main itself killed at the time limit is `timeout`'s (or, refused a port, that check's).
    let left: Vec<String> = phases
        .iter()
        .flat_map(|(n, o)| {
            o.killed
                .iter()
                .filter(|(p, _)| *p != o.main_pid)
                .map(move |(p, why)| format!("{n}: pid {p} {why}"))
        })
        .collect();
    // A program that never did its part (no port bound, no message sent) left nothing to
    // judge: its hygiene checks do not pass for it.
    let idle = udp.holder.is_none()
        && tcp.holder.is_none()
        && !matches!(udp_client.got, Some(Ok(_)))
        && !matches!(tcp_client.got, Some(Ok(_)));
    let idle_skip = || {
        tf!(
            "skipped: no role did its part (no port bound, no message sent), so there is nothing to judge",
            "non jugé : aucun rôle n'a fait sa part (aucun port associé, aucun message envoyé), il n'y a rien à juger"
        )
    };
    v.push(if left.is_empty() && idle {
        check(c, "no-leftover-processes", false, true, idle_skip())
    } else if left.is_empty() {
        check(
            c,
            "no-leftover-processes",
            true,
            false,
            tf!(
                "nothing was left running after any role",
                "rien n'est resté en marche après aucun rôle"
            ),
        )
    } else {
        check(
            c,
            "no-leftover-processes",
            false,
            false,
            tf!(
                "{}: every process of a role ends with it",
                "{} : tout processus d'un rôle finit avec lui",
                left.join(sep)
            ),
        )
    });
    // Servers end on SIGTERM (within term_ms), clients after their answer (the time budget).
    let mut slow: Vec<String> = Vec::new();
    if udp.ignored_term {
        slow.push("udp-server".into());
    }
    if tcp.ignored_term {
        slow.push("tcp-server".into());
    }
    for (n, o) in phases {
        if o.timed_out && !n.contains("port in use") && !slow.iter().any(|x| x == n) {
            slow.push(n.to_string());
        }
    }
    v.push(if slow.is_empty() && idle {
        check(c, "timeout", false, true, idle_skip())
    } else if slow.is_empty() {
        check(c, "timeout", true, false, tf!("every role ended in time", "chaque rôle a fini à temps"))
    } else {
        check(c, "timeout", false, false, tf!(
            "{} did not end in time: a server ends within {} ms of SIGTERM, a client once answered",
            "{} n'a pas fini à temps : un serveur finit dans les {} ms qui suivent SIGTERM, un client une fois la réponse reçue",
            slow.join(", "),
            c.bound_ms("term_ms", 2000)
        ))
    });
    v
}

/// A client's run: its message reached the grader, it got the OK (and, TCP, closed first), and
/// exited 0.
fn client_check(
    c: &crate::spec::Contract,
    name: &str,
    seen: &ClientSeen,
    out: Option<&Outcome>,
    closed_first: Option<&Option<std::result::Result<(), String>>>,
) -> Check {
    let Some(out) = out else {
        return check(
            c,
            name,
            false,
            true,
            tf!("skipped: not run", "non jugé : pas lancé"),
        );
    };
    let want = out.stdout_lines.len();
    let _ = want;
    let mut bad = Vec::new();
    match &seen.got {
        Some(Ok(_)) => {}
        Some(Err(e)) => bad.push(e.clone()),
        None => bad.push(tf!(
            "the grader never heard from the client",
            "le correcteur n'a jamais eu de nouvelles du client"
        )),
    }
    if let Some(Some(Err(e))) = closed_first {
        bad.push(e.clone());
    }
    match out.main_status {
        Some(nix::sys::wait::WaitStatus::Exited(_, 0)) => {}
        Some(st) if !out.timed_out => bad.push(tf!(
            "the client {}: it exits 0 once answered{}",
            "le client {} : il finit avec 0 une fois la réponse reçue{}",
            crate::process::describe(&st),
            crate::grade::checks::stderr_tail(out)
        )),
        _ => bad.push(tf!("the client did not end", "le client n'a pas fini")),
    }
    let printed = out.stdout_lines.iter().any(|(_, l)| l.contains("OK"));
    if bad.is_empty() && !printed {
        bad.push(tf!(
            "the client never printed the server's OK",
            "le client n'a jamais affiché le OK du serveur"
        ));
    }
    if bad.is_empty() {
        let msg = seen
            .got
            .as_ref()
            .and_then(|r| r.as_ref().ok())
            .cloned()
            .unwrap_or_default();
        check(
            c,
            name,
            true,
            false,
            tf!(
                "{msg:?} received, OK printed, exit 0",
                "{msg:?} reçu, OK affiché, statut 0"
            ),
        )
    } else {
        check(c, name, false, false, bad.join(crate::lang::sep()))
    }
}

fn transcript_text(env: &RunEnv, phases: &[(&str, Outcome)], checks: &[Check]) -> String {
    let mut t = tf!(
        "lab 8, seed {}\nreplay this run: {}\n",
        "lab 8, graine {}\nrejouer cette exécution : {}\n",
        env.seed,
        env.replay
    );
    for (name, o) in phases {
        let stdout: Vec<&str> = o.stdout_lines.iter().map(|(_, l)| l.as_str()).collect();
        t.push_str(&format!(
            "\n-- {name}: {}\nstdout:\n{}\nstderr:\n{}\n",
            o.main_status
                .map_or(tf!("did not end", "n'a pas fini"), |s| {
                    crate::process::describe(&s)
                }),
            stdout.join("\n"),
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    t.push_str(&format!("\n-- {}\n", tf!("checks", "vérifications")));
    for c in checks {
        let w = if c.passed {
            "OK  "
        } else if c.skipped {
            "SKIP"
        } else {
            "FAIL"
        };
        t.push_str(&format!("{w} {}: {}\n", c.name, c.detail));
    }
    t
}
