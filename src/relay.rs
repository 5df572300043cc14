//! Message delay between namespace hosts (labs 8–15), in userspace: the kernel here has
//! nftables but no netem qdisc. `ipclab hosts relay on` starts one relay process; nftables in
//! each host's namespace redirects every TCP connection it opens to another host over a link
//! named by a delay (over every link when recording; ssh aside) to the relay's listener on
//! that host (127.0.0.1, port 1: below 1024, so no host's user can take it). The relay reads
//! the original destination (SO_ORIGINAL_DST), connects there from
//! the same host (its own sockets carry a mark the rule lets through, so the server sees the
//! client's host address), and copies both ways, holding each piece back by its link's delay
//! (a seeded jitter on top, order kept), and records every piece: when it was read, when it is
//! due, from and to which endpoint, its bytes; each connection's open line names the process at
//! either end, found in the hosts' socket tables (`ipclab hosts relay chart` draws a lifeline per
//! process from them). `relay off` removes the rules and stops it;
//! `hosts down` stops it too. Connections open before `relay on` stay direct (the NAT chain
//! exists from `hosts up`, so conntrack knows them), as do sockets marked with `MARK`.
//!
//! A connection whose links have no delay is copied both ways by one thread that polls a
//! little (`SPIN`) before it sleeps, one connection at a time, and writes its records out before
//! sleeping (and at `relay off`): a relayed round trip then costs about 1.4–1.9× a direct one
//! (`make bench-hosts`), not the 2–4× of a thread per direction that sleeps after each piece.
//!
//! What differs from a direct connection: connect succeeds at once (the relay accepts), and a
//! refused destination is then a reset (ECONNRESET) rather than ECONNREFUSED; the server sees
//! the client's address but another source port. UDP is not relayed.

use crate::error::{Error, Result};
use crate::hosts::{Cluster, Host};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The relay's port on each host's loopback.
pub const PORT: u16 = 1;
/// The mark of the relay's own connections, which the redirect lets through.
pub const MARK: u32 = 0x1a9;
use crate::hosts::RELAY_TABLE as TABLE;

/// One link's delay: pieces sent from `from` to `to` wait `ms`, plus up to `jitter_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub from: String,
    pub to: String,
    pub ms: u64,
    pub jitter_ms: u64,
}

impl Link {
    /// `FROM:TO:MS[:JITTER]` (`h1:h2:50`, `h1:h2:50:20`); `*` for every host.
    pub fn parse(s: &str) -> Result<Link> {
        let w: Vec<&str> = s.split(':').collect();
        let ms = |x: &str| -> Result<u64> {
            x.parse::<u64>()
                .ok()
                .filter(|v| *v <= 60_000)
                .ok_or_else(|| Error::usage(format!("--delay {s}: {x:?} is not 0..=60000 ms")))
        };
        match w[..] {
            [from, to, d] | [from, to, d, _] if !from.is_empty() && !to.is_empty() => Ok(Link {
                from: from.into(),
                to: to.into(),
                ms: ms(d)?,
                jitter_ms: w.get(3).map_or(Ok(0), |j| ms(j))?,
            }),
            _ => Err(Error::usage(format!(
                "--delay {s}: want FROM:TO:MS[:JITTER] (h1:h2:50, *:h3:20:10)"
            ))),
        }
    }

    fn matches(&self, from: &str, to: &str) -> bool {
        (self.from == "*" || self.from == from) && (self.to == "*" || self.to == to)
    }
}

pub struct Config {
    pub links: Vec<Link>,
    pub seed: u64,
    /// JSON lines of every piece and connection (created, mode 0600; never an existing file).
    pub record: Option<PathBuf>,
}

fn pidfile() -> PathBuf {
    crate::hosts::state_dir().join("relay.pid")
}

/// The relay's pid, if one runs for the hosts that are up.
pub fn running() -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pidfile())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    crate::inspect::info(pid)
        .filter(|i| !i.is_zombie())
        .map(|_| pid)
}

/// Starts the relay for `c` (single-threaded caller: it forks); its pid once it relays.
pub fn on(c: &Cluster, cfg: Config) -> Result<i32> {
    if let Some(pid) = running() {
        return Err(Error::usage(format!(
            "the relay runs already (pid {pid}): ipclab hosts relay off first"
        )));
    }
    for l in &cfg.links {
        for h in [&l.from, &l.to] {
            if h != "*" {
                c.host(h)?;
            }
        }
    }
    let record = match &cfg.record {
        None => None,
        Some(p) => Some(create_new(p)?),
    };
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::sys(e, "pipe2", "relay"))?;
    // Safety: the CLI is single-threaded here; the child serves and never returns.
    match unsafe { nix::unistd::fork() }.map_err(|e| Error::sys(e, "fork", "relay"))? {
        nix::unistd::ForkResult::Child => {
            drop(r);
            let _ = nix::unistd::setsid();
            // A normal user's hosts: the keeper's user namespace, joined while this process is
            // single-threaded, gives it the capabilities there that the listeners need.
            if let Err(e) = crate::hosts::user::join_if_user() {
                tell(&w, &e.to_string());
                // Safety: _exit from the forked relay.
                unsafe { libc::_exit(1) }
            }
            let mut keep = vec![w.as_raw_fd()];
            keep.extend(record.as_ref().map(|f| f.as_raw_fd()));
            crate::daemon::close_fds_except(&keep);
            let _ = crate::daemon::stdio_to_dev_null();
            let code = match serve(c, &cfg, record, w) {
                Ok(()) => 0,
                // serve has told the launcher (and closed the pipe) already.
                Err(_) => 1,
            };
            // Safety: _exit from the forked relay.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(w);
            let mut said = String::new();
            let _ = std::fs::File::from(r).read_to_string(&mut said);
            match said.strip_prefix("ok") {
                Some(_) => Ok(child.as_raw()),
                None => {
                    let _ = nix::sys::wait::waitpid(child, None);
                    // Nothing half-made stays: the record file we created goes too.
                    if let Some(p) = &cfg.record {
                        let _ = std::fs::remove_file(p);
                    }
                    Err(Error::runtime(if said.is_empty() {
                        "the relay died while starting".to_string()
                    } else {
                        said
                    }))
                }
            }
        }
    }
}

/// Stops the relay (its rules go with it); false if none ran.
pub fn off() -> Result<bool> {
    let Some(pid) = running() else {
        return Ok(false);
    };
    let p = nix::unistd::Pid::from_raw(pid);
    let fd = crate::process::pidfd_open(p).ok();
    crate::process::signal(p, nix::sys::signal::Signal::SIGTERM)?;
    if let Some(fd) = fd {
        let _ = crate::signals::poll_fds(&[fd.as_fd()], Some(Duration::from_secs(5)));
    }
    Ok(true)
}

fn create_new(p: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(p)
        .map_err(|e| Error::io(&e, "create", p.display()).into_usage())
}

fn tell(w: &OwnedFd, msg: &str) {
    // Safety: write(2) of our own buffer, far below PIPE_BUF.
    unsafe { libc::write(w.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
}

/// Where pieces are recorded, and the clock they are timed by.
struct Recorder {
    /// The file, and lines recorded but not yet written (`line_later`).
    file: Option<Mutex<(std::fs::File, Vec<u8>)>>,
    t0: Instant,
}

impl Recorder {
    /// Records a line and writes it out at once, with any held before it.
    fn line(&self, v: serde_json::Value) {
        self.line_later(&v);
        self.flush();
    }
    /// Records a line, written out by the next `flush` (or once 64 KiB are held): a relay
    /// without delay would otherwise pay a write(2) per piece in its round trips.
    fn line_later(&self, v: &impl serde::Serialize) {
        if let Some(f) = &self.file {
            if let Ok(mut f) = f.lock() {
                let held = &mut f.1;
                if serde_json::to_writer(&mut *held, v).is_err() {
                    return;
                }
                held.push(b'\n');
                if held.len() >= 1 << 16 {
                    drop(f);
                    self.flush();
                }
            }
        }
    }
    /// Writes out the lines held, in one write: lines never tear.
    fn flush(&self) {
        if let Some(f) = &self.file {
            if let Ok(mut f) = f.lock() {
                let (file, held) = &mut *f;
                if !held.is_empty() {
                    let _ = file.write_all(held);
                    held.clear();
                }
            }
        }
    }
    fn t(&self, at: Instant) -> f64 {
        (at - self.t0).as_secs_f64()
    }
}

/// The relay's life: listeners, rules, "ok" to the launcher (its pipe then closed: it reads to
/// the end), then until SIGTERM. A failure is told the same way.
fn serve(c: &Cluster, cfg: &Config, record: Option<std::fs::File>, ready: OwnedFd) -> Result<()> {
    match listen_all(c, cfg, record) {
        Ok((sigs, rec)) => {
            tell(&ready, "ok");
            drop(ready);
            let done = wait_and_undo(c, sigs);
            // What connections still open recorded since their last flush.
            rec.flush();
            done
        }
        Err(e) => {
            for h in &c.hosts {
                let _ = crate::hosts::nft_in(h, &format!("flush chain ip {TABLE} out"));
            }
            tell(&ready, &e.to_string());
            Err(e)
        }
    }
}

fn listen_all(
    c: &Cluster,
    cfg: &Config,
    record: Option<std::fs::File>,
) -> Result<(crate::signals::SignalPipe, Arc<Recorder>)> {
    let sigs = crate::signals::SignalPipe::new(&[
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
    ])?;
    let rec = Arc::new(Recorder {
        file: record.map(|f| Mutex::new((f, Vec::new()))),
        t0: Instant::now(),
    });
    let cluster = Arc::new(c.clone());
    let links = Arc::new(cfg.links.clone());
    for h in &c.hosts {
        let ns = h
            .net_ns()
            .map_err(|e| Error::io(&e, "open the network namespace of", &h.name))?;
        let (tx, rx) = mpsc::channel();
        let (host, cluster, links, rec) = (h.clone(), cluster.clone(), links.clone(), rec.clone());
        let seed = cfg.seed;
        // The thread lives in the host's namespace: its sockets, and its threads', are there.
        std::thread::spawn(move || {
            let bound = nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("setns {}: {e}", host.name))
                .and_then(|_| {
                    TcpListener::bind((Ipv4Addr::LOCALHOST, PORT))
                        .map_err(|e| format!("bind 127.0.0.1:{PORT} on {}: {e}", host.name))
                });
            let l = match bound {
                Ok(l) => {
                    let _ = tx.send(Ok(()));
                    l
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            accept_loop(l, &host, &cluster, &links, seed, &rec);
        });
        rx.recv()
            .map_err(|_| Error::runtime("a relay thread died"))?
            .map_err(Error::runtime)?;
    }
    for h in &c.hosts {
        if let Some(r) = rules(h, c, &cfg.links, rec.file.is_some()) {
            crate::hosts::nft_in(h, &r)?;
        }
    }
    std::fs::write(pidfile(), format!("{}\n", std::process::id()))
        .map_err(|e| Error::io(&e, "write", pidfile().display()))?;
    Ok((sigs, rec))
}

fn wait_and_undo(c: &Cluster, mut sigs: crate::signals::SignalPipe) -> Result<()> {
    loop {
        crate::signals::poll_fds(&[sigs.fd()], None)?;
        if !sigs.take().is_empty() {
            break;
        }
    }
    for h in &c.hosts {
        let _ = crate::hosts::nft_in(h, &format!("flush chain ip {TABLE} out"));
    }
    let _ = std::fs::remove_file(pidfile());
    Ok(())
}

/// The redirect in `h`'s namespace (its chain made by `hosts up`): TCP to another host, ssh
/// and the relay's own connections aside. Only to hosts whose link either way is named by a
/// `--delay` (0 ms included), unless every piece is recorded: a link not named stays direct,
/// since a relayed round trip costs two more wake-ups of a process (`make bench-hosts`).
fn rules(h: &Host, c: &Cluster, links: &[Link], all: bool) -> Option<String> {
    let delayed = |a: &str, b: &str| links.iter().any(|l| l.matches(a, b));
    let to: Vec<String> = c
        .hosts
        .iter()
        .filter(|d| d.name != h.name)
        .filter(|d| all || delayed(&h.name, &d.name) || delayed(&d.name, &h.name))
        .map(|d| d.addr.to_string())
        .collect();
    if to.is_empty() {
        return None;
    }
    Some(format!(
        "add rule ip {TABLE} out meta mark {MARK:#x} return ; \
         add rule ip {TABLE} out ip daddr {{ {} }} tcp dport != {} redirect to :{PORT}",
        to.join(", "),
        crate::hosts::ssh_port()
    ))
}

fn accept_loop(
    l: TcpListener,
    host: &Host,
    c: &Arc<Cluster>,
    links: &Arc<Vec<Link>>,
    seed: u64,
    rec: &Arc<Recorder>,
) {
    for (id, conn) in (0u64..).zip(l.incoming()) {
        let Ok(conn) = conn else { continue };
        let (host, c, links, rec) = (host.clone(), c.clone(), links.clone(), rec.clone());
        let id = id * 1000 + host.addr.octets()[3] as u64;
        std::thread::spawn(move || relay_one(conn, &host, &c, &links, seed ^ id, id, &rec));
    }
}

fn original_dst(s: &TcpStream) -> Option<SocketAddrV4> {
    let a = nix::sys::socket::getsockopt(s, nix::sys::socket::sockopt::OriginalDst).ok()?;
    let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
    Some(SocketAddrV4::new(ip, u16::from_be(a.sin_port)))
}

fn relay_one(
    client: TcpStream,
    from: &Host,
    c: &Cluster,
    links: &[Link],
    seed: u64,
    id: u64,
    rec: &Recorder,
) {
    let Some(dst) = original_dst(&client) else {
        return;
    };
    let Some(to) = c.hosts.iter().find(|h| h.addr == *dst.ip()) else {
        return;
    };
    let peer = client.peer_addr().map_or("?".into(), |a| a.to_string());
    let ends = (
        format!("{} {peer}", from.name),
        format!("{} {dst}", to.name),
    );
    let server = (|| -> std::io::Result<TcpStream> {
        let fd = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Inet,
            nix::sys::socket::SockType::Stream,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::Mark, &MARK)?;
        nix::sys::socket::connect(fd.as_raw_fd(), &nix::sys::socket::SockaddrIn::from(dst))?;
        Ok(TcpStream::from(fd))
    })();
    let server = match server {
        Ok(s) => s,
        Err(e) => {
            rec.line(
                serde_json::json!({"t": rec.t(Instant::now()), "conn": id, "ev": "refused",
                "from": ends.0, "to": ends.1, "error": e.to_string()}),
            );
            // A reset, the nearest a relay can come to the refusal the client would have had.
            let _ = nix::sys::socket::setsockopt(
                &client,
                nix::sys::socket::sockopt::Linger,
                &libc::linger {
                    l_onoff: 1,
                    l_linger: 0,
                },
            );
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    if rec.file.is_some() {
        let t = rec.t(Instant::now());
        // Who is at each end, from the hosts' socket tables: the client holding its end, the
        // server its listener (its accepted socket may not be accepted yet).
        let (from_proc, to_proc) = match (client.peer_addr(), from.sshd_pid(), to.sshd_pid()) {
            (Ok(p), Some(fp), Some(tp)) => (
                crate::inet::tcp_holder(fp, |e| e.local == p && e.state != "LISTEN"),
                crate::inet::tcp_holder(tp, |e| {
                    e.state == "LISTEN" && e.local.port() == dst.port()
                }),
            ),
            _ => (None, None),
        };
        rec.line(serde_json::json!({"t": t, "conn": id, "ev": "open",
            "from": ends.0, "to": ends.1,
            "from_proc": from_proc.and_then(crate::inspect::ns_name), "to_proc": to_proc.and_then(crate::inspect::ns_name)}));
    }
    let delay = |a: &str, b: &str| links.iter().rev().find(|l| l.matches(a, b)).cloned();
    let (there, back) = (delay(&from.name, &to.name), delay(&to.name, &from.name));
    let (c2, s2) = match (client.try_clone(), server.try_clone()) {
        (Ok(c2), Ok(s2)) => (c2, s2),
        _ => return,
    };
    let still = |l: &Option<Link>| l.as_ref().is_none_or(|l| l.ms == 0 && l.jitter_ms == 0);
    if still(&there) && still(&back) {
        drop((c2, s2));
        return copy_both([client, server], id, [&ends.0, &ends.1], rec);
    }
    std::thread::scope(|sc| {
        let e = &ends;
        sc.spawn(|| pump(client, s2, there, seed, id, (&e.0, &e.1), rec));
        pump(server, c2, back, seed.rotate_left(1), id, (&e.1, &e.0), rec);
    });
}

/// Copies `src` to `dst`, each piece held back by `link`'s delay (order kept); the end of
/// `src` is passed on as a shutdown of `dst`'s writing side, once the pieces before it are out.
fn pump(
    mut src: TcpStream,
    mut dst: TcpStream,
    link: Option<Link>,
    seed: u64,
    id: u64,
    (from, to): (&str, &str),
    rec: &Recorder,
) {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (ms, jitter) = link.map_or((0, 0), |l| (l.ms, l.jitter_ms));
    if ms == 0 && jitter == 0 {
        // No delay on this link: copied as read, with no hand-over to a writer thread.
        return copy(src, dst, id, (from, to), rec);
    }
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::scope(|s| {
        let writer = s.spawn(move || {
            for (due, piece) in rx {
                let now = Instant::now();
                if due > now {
                    // The fault itself: this piece is held until its due time.
                    std::thread::sleep(due - now);
                }
                if piece.is_empty() || dst.write_all(&piece).is_err() {
                    break;
                }
            }
            let _ = dst.shutdown(std::net::Shutdown::Write);
        });
        let mut last = Instant::now();
        let mut buf = vec![0u8; 65536];
        loop {
            let n = match src.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => 0,
            };
            let now = Instant::now();
            let extra = if jitter > 0 {
                rng.random_range(0..=jitter)
            } else {
                0
            };
            // FIFO: a piece is never due before the one read before it.
            let due = (now + Duration::from_millis(ms + extra)).max(last);
            last = due;
            record(rec, id, (from, to), &buf[..n], (now, due));
            rec.flush();
            if tx.send((due, buf[..n].to_vec())).is_err() || n == 0 {
                break;
            }
        }
        drop(tx);
        let _ = writer.join();
    });
}

/// `pump` for a link without delay.
fn copy(mut src: TcpStream, mut dst: TcpStream, id: u64, (from, to): (&str, &str), rec: &Recorder) {
    let mut buf = vec![0u8; 65536];
    loop {
        let n = match src.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => 0,
        };
        let now = Instant::now();
        record(rec, id, (from, to), &buf[..n], (now, now));
        rec.flush();
        if n == 0 || dst.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = dst.shutdown(std::net::Shutdown::Write);
}

/// Both directions of a connection without delay, on one thread: a round trip then wakes one
/// relay thread twice, not two threads once each, which on this VM keeps the relay on the CPU
/// its peers use (`make bench-hosts`). Non-blocking, with what a peer cannot take yet kept
/// and no more read from the other side meanwhile, so two peers that both write and neither
/// reads cannot lock the relay.
fn copy_both(s: [TcpStream; 2], id: u64, ends: [&str; 2], rec: &Recorder) {
    copy_both_until_end(s, id, ends, rec);
    let _ = SPINNER.compare_exchange(id + 1, 0, Ordering::AcqRel, Ordering::Acquire);
    rec.flush();
}

fn copy_both_until_end(mut s: [TcpStream; 2], id: u64, ends: [&str; 2], rec: &Recorder) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    for x in &s {
        if x.set_nonblocking(true).is_err() {
            return;
        }
    }
    // pending[i]: read from s[i], not yet written to s[1 - i]; open[i]: s[i] not at its end.
    let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut open = [true, true];
    let mut buf = vec![0u8; 65536];
    while open[0] || open[1] || !pending[0].is_empty() || !pending[1].is_empty() {
        let mut want = [PollFlags::empty(); 2];
        for i in 0..2 {
            if open[i] && pending[i].is_empty() {
                want[i] |= PollFlags::POLLIN;
            }
            if !pending[i].is_empty() {
                want[1 - i] |= PollFlags::POLLOUT;
            }
        }
        let mut fds = [
            PollFd::new(s[0].as_fd(), want[0]),
            PollFd::new(s[1].as_fd(), want[1]),
        ];
        // Spin a little before sleeping: an answer that comes within SPIN finds the relay
        // awake, so a round trip pays no wake-up of the relay (each costs ~3–60 µs here,
        // as much as the whole direct trip); past SPIN the relay sleeps in poll.
        // One connection spins at a time, yielding the CPU at each turn: a relay of many
        // connections never holds both cores of a 2-core machine from the programs it serves.
        let spinning = SPINNER
            .compare_exchange(0, id + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            || SPINNER.load(Ordering::Acquire) == id + 1;
        let spin_until = Instant::now() + if spinning { SPIN } else { Duration::ZERO };
        loop {
            let idle = Instant::now() < spin_until;
            if !idle {
                if spinning {
                    let _ =
                        SPINNER.compare_exchange(id + 1, 0, Ordering::AcqRel, Ordering::Acquire);
                }
                // About to sleep: what this connection recorded is written out first.
                rec.flush();
            }
            let t = if idle {
                PollTimeout::ZERO
            } else {
                PollTimeout::NONE
            };
            match poll(&mut fds, t) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
                Ok(0) if idle => std::thread::yield_now(),
                Ok(_) => break,
            }
        }
        let got: Vec<PollFlags> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect();
        for i in 0..2 {
            let (o, to) = (i, 1 - i);
            if !pending[o].is_empty() && !got[to].is_empty() {
                match s[to].write(&pending[o]) {
                    Ok(n) => drop(pending[o].drain(..n)),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return,
                }
                if pending[o].is_empty() && !open[o] {
                    let _ = s[to].shutdown(std::net::Shutdown::Write);
                }
            }
            if open[o] && pending[o].is_empty() && !got[o].is_empty() {
                let n = match s[o].read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => 0,
                };
                let now = Instant::now();
                record(rec, id, (ends[o], ends[to]), &buf[..n], (now, now));
                if n == 0 {
                    open[o] = false;
                    let _ = s[to].shutdown(std::net::Shutdown::Write);
                    continue;
                }
                match s[to].write(&buf[..n]) {
                    Ok(w) => pending[o].extend_from_slice(&buf[w..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        pending[o].extend_from_slice(&buf[..n])
                    }
                    Err(_) => return,
                }
            }
        }
    }
}

/// How long a relay without delay polls without sleeping after its last piece.
const SPIN: Duration = Duration::from_micros(200);
/// The connection (id + 1) spinning now, 0 if none.
static SPINNER: AtomicU64 = AtomicU64::new(0);

/// One piece (or, empty, the end) read from `from` at `read`, due at the other end at `due`:
/// its line held until the next flush, serialised without building a JSON value (it is on the
/// round trip of a relay without delay).
fn record(
    rec: &Recorder,
    id: u64,
    (from, to): (&str, &str),
    piece: &[u8],
    (read, due): (Instant, Instant),
) {
    #[derive(serde::Serialize)]
    struct Piece<'a> {
        t: f64,
        due: f64,
        conn: u64,
        from: &'a str,
        to: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        len: Option<usize>,
        #[serde(skip_serializing_if = "Option::is_none")]
        hex: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ev: Option<&'static str>,
    }
    if rec.file.is_none() {
        return;
    }
    let end = piece.is_empty();
    rec.line_later(&Piece {
        t: rec.t(read),
        due: rec.t(due),
        conn: id,
        from,
        to,
        len: (!end).then_some(piece.len()),
        hex: (!end).then(|| hex(piece)),
        ev: end.then_some("eof"),
    });
}

fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 * b.len());
    for x in b {
        s.push(DIGITS[(x >> 4) as usize] as char);
        s.push(DIGITS[(x & 15) as usize] as char);
    }
    s
}

/// The address a record names (`h2 10.213.0.2:7000`), for readers of the records.
pub fn endpoint(s: &str) -> Option<(String, SocketAddr)> {
    let (h, a) = s.split_once(' ')?;
    Some((h.to_string(), a.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_parse_and_match() {
        let l = Link::parse("h1:h2:50:20").unwrap();
        assert_eq!((l.ms, l.jitter_ms), (50, 20));
        assert!(l.matches("h1", "h2") && !l.matches("h2", "h1"));
        assert!(Link::parse("*:h3:5").unwrap().matches("h9", "h3"));
        for bad in ["h1:h2", "h1:h2:x", ":h2:5", "h1:h2:70000", "h1:h2:5:6:7"] {
            assert_eq!(Link::parse(bad).err().map(|e| e.code()), Some(2), "{bad}");
        }
        assert_eq!(
            endpoint("h2 10.213.0.2:7000"),
            Some(("h2".into(), "10.213.0.2:7000".parse().unwrap()))
        );
    }
}
