//! Lab 9's grading. The daemon: `IMPL fingerd --port P --dir DIR` must return to the grader
//! (the daemon left running, which becomes the grader's child: it is the subreaper); the grader
//! inspects it from /proc, asks it about users it made in the box (a synthetic passwd, homes
//! with .plan files), compares each answer with its own `finger -l` run in the same box, sends
//! it hostile queries, reads its log and pidfile, and stops it with SIGTERM. The client:
//! `IMPL fingercli --login L --host H --port P` against the grader's own server, which sends a
//! long answer in pieces; then against a port nobody listens on.
//!
//! As root the run has a network namespace of its own (`RunNet`); a normal user's has the
//! machine's loopback and no synthetic users (its box has no mount namespace): the checks that
//! need them are skipped, and say why.

use crate::error::{Error, Result};
use crate::grade::checks::{self, Checks};
use crate::grade::harness::{self, Launch, Outcome};
use crate::grade::net::RunNet;
use crate::grade::report::Check;
use crate::grade::{daemonized, interrupted_error, RunEnv, RunResult};
use crate::sandbox::BoxDir;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// The sheet's port, in the run's own namespace.
const PORT: u16 = 7979;
/// The grader's users get uids from here: outside the box uids; nothing ever runs as them.
const FIRST_UID: u32 = 62001;
/// The long plan: larger than any single recv a client would make.
const LONG_PLAN: usize = 100_000;
/// What the grader reads of one answer at most.
const MAX_ANSWER: usize = 8 << 20;
/// The client phase's answer: many lines, sent in three writes with a pause between (so that
/// a client making one recv cannot get it whole by luck).
const CLIENT_ANSWER: usize = 120_000;
const PIECE_GAP: Duration = Duration::from_millis(50);

struct Bounds {
    start: Duration,
    answer: Duration,
    term: Duration,
    refuse: Duration,
}

/// Who the daemon is asked about.
struct Users {
    /// Exists, with a short plan.
    known: String,
    /// Exists, with a plan of LONG_PLAN bytes (none without a box of ours).
    long: Option<String>,
    missing: String,
}

/// One query the grader made, and what came back.
#[derive(Clone)]
struct Asked {
    login: String,
    from: Ipv4Addr,
    /// The whole answer (the server closed), or what went wrong.
    got: std::result::Result<Vec<u8>, String>,
}

/// What the grader saw while it played the daemon's clients.
#[derive(Default)]
struct Played {
    known: Option<Asked>,
    missing: Option<Asked>,
    long: Option<Asked>,
    /// Asked while one client held a connection without a query; then that client's own.
    concurrent: Vec<Asked>,
    held: Option<Asked>,
    /// Each hostile query: what it was, and the answer or the error (either is fine).
    hostile: Vec<(String, String)>,
    /// `known` again, after the hostile queries.
    after: Option<Asked>,
}

impl Played {
    /// Every well-formed query: each should have its log line.
    fn well_formed(&self) -> Vec<&Asked> {
        [&self.known, &self.missing, &self.long]
            .into_iter()
            .flatten()
            .chain(&self.concurrent)
            .chain(self.held.iter())
            .chain(self.after.iter())
            .collect()
    }
}

/// What the grader saw of the daemon apart from its answers.
#[derive(Default)]
struct DaemonSeen {
    pid: Option<i32>,
    facts: Option<daemonized::Facts>,
    pidfile_pid: Option<i32>,
    log: Option<String>,
    /// Commands a hostile query made run (their marker files exist).
    pwned: Vec<String>,
    alive_after_hostile: bool,
    /// SIGTERM: its exit status, or None (killed after term_ms).
    term_status: Option<i32>,
    pidfile_left: bool,
    port_held_after: bool,
    /// Processes of the box still running after the daemon ended: (pid, comm).
    leftovers: Vec<(i32, String)>,
}

/// What the grader's server saw of the client.
#[derive(Default, Clone)]
struct ClientSeen {
    query: Option<std::result::Result<String, String>>,
}

pub fn run(env: &RunEnv) -> Result<RunResult> {
    let c = env.contract;
    let params = crate::grade::params_for(env.seed, c);
    let k = params.get("K").copied().unwrap_or(3).max(2) as usize;
    let b = Bounds {
        start: Duration::from_millis(c.bound_ms("start_ms", 5000)),
        answer: Duration::from_millis(c.bound_ms("answer_ms", 5000)),
        term: Duration::from_millis(c.bound_ms("term_ms", 2000)),
        refuse: Duration::from_millis(c.bound_ms("refuse_ms", 5000)),
    };
    if !Path::new("/usr/bin/finger").exists() {
        return Err(Error::runtime(
            "lab 9's grading compares answers with /usr/bin/finger, which is missing: apt-get install finger",
        )
        .with_code(3));
    }
    let root = env.new_box()?;
    let net = RunNet::new()?;
    let users = make_users(&root, env.seed)?;
    let launch = |role: &str, args: &[String]| -> Result<Launch> {
        let mut l = env.launch_role(role, args, &root)?;
        net.apply(&mut l);
        Ok(l)
    };
    let mut phases: Vec<(&'static str, Outcome)> = Vec::new();

    // What finger itself says in this box: the answers to expect.
    let mut expected = std::collections::BTreeMap::new();
    for login in [Some(&users.known), users.long.as_ref()]
        .into_iter()
        .flatten()
    {
        expected.insert(login.clone(), finger_here(env, &root, login)?);
    }

    // The daemon.
    let port = net.port(PORT)?;
    let dir = root.dir();
    let mut l = launch(
        "fingerd",
        &[
            "--port".into(),
            port.to_string(),
            "--dir".into(),
            dir.display().to_string(),
        ],
    )?;
    l.use_ptrace = false;
    l.keep_survivors = true;
    l.timeout = b.start;
    let out = step(&l)?;
    let mut seen = DaemonSeen::default();
    let started = Instant::now();
    let box_uid = env.ctx.run_as.map(|(u, _)| u);
    let mut played = Played::default();
    if !out.timed_out {
        // The daemon may still be starting when its launcher returns: its port is waited for.
        seen.pid = loop {
            let mine = box_processes(box_uid);
            if let Some(p) = crate::inet::tcp_listener_of(&mine, port) {
                break Some(p);
            }
            if started.elapsed() > b.start {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
    }
    if let Some(pid) = seen.pid {
        seen.facts = Some(daemonized::inspect(pid, &dir.join("fingerd.pid"), &out));
        let (u, dir2, ans) = (&users, dir.clone(), b.answer);
        played = net.run(|| play(port, u, k, &dir2, ans))?;
        seen.alive_after_hostile = crate::inspect::info(pid).is_some_and(|i| !i.is_zombie());
        seen.pwned = (0..HOSTILE.len())
            .filter(|n| dir.join(format!("pwned-{n}")).symlink_metadata().is_ok())
            .map(|n| {
                let q = played.hostile.get(n).map_or("?", |h| h.0.as_str());
                format!("DIR/pwned-{n} ({q})")
            })
            .collect();
        seen.pidfile_pid =
            checks::read_box_file(&dir.join("fingerd.pid"), 64).and_then(|s| s.trim().parse().ok());
        seen.term_status = stop(pid, b.term);
        // Read once the daemon has ended: a log it buffers and flushes at exit still counts.
        seen.log = checks::read_box_file(&dir.join("fingerd.log"), 1 << 20);
        seen.pidfile_left = dir.join("fingerd.pid").symlink_metadata().is_ok();
        seen.port_held_after = net
            .run(|| TcpListener::bind(("127.0.0.1", port)).is_err())
            .unwrap_or(false);
    }
    // Whatever of the box still runs now is left over: killed and reaped.
    for pid in box_processes(box_uid) {
        let comm = crate::inspect::info(pid)
            .map(|i| i.comm)
            .unwrap_or_default();
        seen.leftovers.push((pid, comm));
        let _ = crate::process::signal(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = crate::process::reap_children_within(Duration::from_secs(5));
    phases.push(("fingerd", out));

    // The client, against the grader's server; then against nobody.
    let cport = net.port(PORT + 1)?;
    let listener = net
        .run(|| TcpListener::bind(("127.0.0.1", cport)))?
        .map_err(|e| Error::io(&e, "bind", cport).with_code(3))?;
    let text = client_answer(env.seed);
    let login = users.known.clone();
    let (t2, lim) = (text.clone(), (b.start, b.answer));
    let peer = net.spawn(move || serve_client(listener, &t2, lim.0, lim.1));
    let cargs = |p: u16| -> Vec<String> {
        vec![
            "--login".into(),
            login.clone(),
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            p.to_string(),
        ]
    };
    let mut l = launch("fingercli", &cargs(cport))?;
    l.timeout = b.start + b.answer;
    phases.push(("fingercli", step(&l)?));
    let client_seen = peer.join().unwrap_or_default();
    let nobody = net.port(PORT + 2)?;
    let mut l = launch("fingercli", &cargs(nobody))?;
    l.timeout = b.refuse;
    phases.push(("fingercli-refused", step(&l)?));

    let checks = judge(
        c,
        &phases,
        &users,
        &expected,
        &played,
        &seen,
        &client_seen,
        &text,
    );
    let failed = checks.iter().any(|c| !c.passed && !c.skipped);
    let transcript = if failed {
        env.transcript(&transcript_text(env, &phases, &played, &seen, &checks))
    } else {
        None
    };
    let mut r = env.result(
        &root,
        &phases,
        checks,
        transcript,
        vec![net.protection()],
        &launch("fingerd", &[])?,
    );
    r.run.params.insert("K".into(), (k as u64).into());
    Ok(r)
}

/// One launch to its end; an interrupted grader stops here.
fn step(l: &Launch) -> Result<Outcome> {
    let out = harness::run(l).map_err(|e| Error::runtime(e.0).with_code(3))?;
    if let Some(sig) = out.interrupted {
        for pid in &out.survivors {
            let _ = crate::process::signal(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        let _ = crate::process::reap_children_within(Duration::from_secs(5));
        return Err(interrupted_error(sig));
    }
    Ok(out)
}

/// The processes this run's box has now: its uid's (root grading), else our descendants.
fn box_processes(uid: Option<u32>) -> Vec<i32> {
    let me = std::process::id() as i32;
    let uids = crate::sandbox::process_uids();
    crate::inspect::descendants(me)
        .into_iter()
        .filter(|p| !p.is_zombie())
        .map(|p| p.pid)
        .filter(|p| uid.is_none_or(|u| uids.iter().any(|(q, pu)| q == p && *pu == u)))
        .collect()
}

/// The box's users and their homes (root's box, which has its own passwd); without one, the
/// grader's own login and no long plan.
fn make_users(root: &BoxDir, seed: u64) -> Result<Users> {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0xf1a9);
    const FIRST: &[&str] = &["ada", "bob", "cyd", "dee", "eve", "fay", "gus", "hal"];
    const NAMES: &[&str] = &[
        "Countess Lovelace",
        "Grace Hopper",
        "Edsger Dijkstra",
        "Barbara Liskov",
        "Leslie Lamport",
        "Frances Allen",
    ];
    let login = |rng: &mut rand::rngs::StdRng| {
        format!(
            "{}{}",
            FIRST[rng.random_range(0..FIRST.len())],
            rng.random_range(10..1000)
        )
    };
    let known = login(&mut rng);
    let mut long = login(&mut rng);
    while long == known {
        long = login(&mut rng);
    }
    let missing = format!("nosuch{}", rng.random_range(100..10000));
    if !root.mounted {
        let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .ok_or_else(|| Error::runtime("your uid has no passwd entry").with_code(3))?;
        return Ok(Users {
            known: me,
            long: None,
            missing,
        });
    }
    let home = root.root.join("home");
    let mkdir = |d: &Path| -> Result<()> {
        std::fs::create_dir(d).map_err(|e| Error::io(&e, "mkdir", d.display()).with_code(3))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io(&e, "chmod", d.display()).with_code(3))
    };
    mkdir(&home)?;
    let mut plan_short = String::new();
    for i in 0..3 {
        plan_short.push_str(&format!("plan line {i}: {}\n", words(&mut rng, 6)));
    }
    let mut plan_long = String::new();
    let mut i = 0;
    while plan_long.len() < LONG_PLAN {
        plan_long.push_str(&format!("{i:05} {}\n", words(&mut rng, 9)));
        i += 1;
    }
    let mut accounts = Vec::new();
    for (n, (login, plan)) in [(&known, plan_short), (&long, plan_long)]
        .into_iter()
        .enumerate()
    {
        let h = home.join(login);
        mkdir(&h)?;
        let p = h.join(".plan");
        std::fs::write(&p, plan).map_err(|e| Error::io(&e, "write", p.display()).with_code(3))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(&e, "chmod", p.display()).with_code(3))?;
        accounts.push((
            login.clone(),
            FIRST_UID + n as u32,
            NAMES[rng.random_range(0..NAMES.len())].to_string(),
            h,
        ));
    }
    root.add_users(&accounts)?;
    Ok(Users {
        known,
        long: Some(long),
        missing,
    })
}

/// `n` words of lower-case letters.
fn words(rng: &mut rand::rngs::StdRng, n: usize) -> String {
    use rand::RngExt;
    (0..n)
        .map(|_| {
            (0..rng.random_range(2..9))
                .map(|_| (b'a' + rng.random_range(0..26u8)) as char)
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What `finger -l -m LOGIN` prints in the box (stdout then stderr), as its uid sees it.
fn finger_here(env: &RunEnv, root: &BoxDir, login: &str) -> Result<String> {
    let mut l = env.launch_program(
        Path::new("/usr/bin/finger"),
        vec!["finger".into(), "-l".into(), "-m".into(), login.into()],
        root,
    )?;
    l.use_ptrace = false;
    let out = step(&l)?;
    let mut text: String = out
        .stdout_lines
        .iter()
        .map(|(_, s)| format!("{s}\n"))
        .collect();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok(text)
}

/// An answer as compared: CRs gone, trailing blanks and blank lines gone, times masked (a
/// login's "On since", "Last login" and idle lines change from one run of finger to the next).
fn normal(text: &str) -> String {
    const TIMED: &[&str] = &[
        "On since",
        "Last login",
        "Mail last read",
        "New mail",
        "Unread since",
    ];
    let lines: Vec<String> = text
        .replace('\r', "")
        .lines()
        .map(|l| {
            let l = l.trim_end();
            match TIMED.iter().find(|p| l.trim_start().starts_with(*p)) {
                Some(p) => format!("{p} (time)"),
                None if l.ends_with(" idle") => "(idle time)".to_string(),
                None => l.to_string(),
            }
        })
        .collect();
    lines.join("\n").trim_matches('\n').to_string()
}

/// The hostile queries: `{L}` is a login that exists, `{M}` a marker file that exists only if a
/// shell ran the rest of the line. The third to last: an overlong line; the last: a NUL.
const HOSTILE: &[&str] = &[
    "{L};touch {M}\r\n",
    "$(touch {M})\r\n",
    "`touch {M}`\r\n",
    "{L}|touch {M}\r\n",
    "{L}&&touch {M}\r\n",
    "{L}\r\ntouch {M}\r\n",
    "{L} > {M}\r\n",
    "OVERLONG",
    "{L}\0;touch {M}\r\n",
];

/// Plays the daemon's clients, in the run's network (called on a thread there).
fn play(port: u16, u: &Users, k: usize, dir: &Path, limit: Duration) -> Played {
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    let mut next = 11u8;
    let mut from = || {
        next = next.wrapping_add(1);
        Ipv4Addr::new(127, 0, 0, next)
    };
    let query = |login: &str| format!("{login}\r\n").into_bytes();
    let mut p = Played {
        known: Some(ask(from(), &u.known, &query(&u.known), to, limit)),
        missing: Some(ask(from(), &u.missing, &query(&u.missing), to, limit)),
        ..Played::default()
    };
    if let Some(long) = &u.long {
        p.long = Some(ask(from(), long, &query(long), to, limit));
    }
    // One client connects and says nothing; K−1 others are answered meanwhile (a server that
    // serves one client at a time would wait on the first); then the first asks.
    let held_from = from();
    let held = crate::inet::connect_from(held_from, to);
    let froms: Vec<Ipv4Addr> = (1..k).map(|_| from()).collect();
    p.concurrent = std::thread::scope(|s| {
        let hs: Vec<_> = froms
            .iter()
            .map(|f| s.spawn(|| ask(*f, &u.known, &query(&u.known), to, limit)))
            .collect();
        hs.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    p.held = Some(Asked {
        login: u.known.clone(),
        from: held_from,
        got: held
            .map_err(|e| e.to_string())
            .and_then(|s| exchange(s, &query(&u.known), limit)),
    });
    for (n, h) in HOSTILE.iter().enumerate() {
        let marker = dir.join(format!("pwned-{n}")).display().to_string();
        let payload: Vec<u8> = if *h == "OVERLONG" {
            let mut v = vec![b'a'; 70_000];
            v.extend_from_slice(b"\r\n");
            v
        } else {
            h.replace("{L}", &u.known)
                .replace("{M}", &marker)
                .into_bytes()
        };
        let shown = if *h == "OVERLONG" {
            tf!("70000 bytes of 'a' then CRLF", "70000 octets 'a' puis CRLF")
        } else {
            crate::inet::shown(&payload)
        };
        let got = match ask(from(), "", &payload, to, limit).got {
            Ok(a) => tf!("answered {} bytes", "réponse de {} octets", a.len()),
            Err(e) => e,
        };
        p.hostile.push((shown, got));
    }
    p.after = Some(ask(from(), &u.known, &query(&u.known), to, limit));
    p
}

/// One query from address `from`: the whole answer, read until the server closes.
fn ask(from: Ipv4Addr, login: &str, payload: &[u8], to: SocketAddr, limit: Duration) -> Asked {
    let got = crate::inet::connect_from(from, to)
        .map_err(|e| tf!("connect: {e}", "connect : {e}"))
        .and_then(|s| exchange(s, payload, limit));
    Asked {
        login: login.to_string(),
        from,
        got,
    }
}

/// Sends `payload`, then reads until the server closes, within `limit`.
fn exchange(
    mut s: TcpStream,
    payload: &[u8],
    limit: Duration,
) -> std::result::Result<Vec<u8>, String> {
    let deadline = Instant::now() + limit;
    let _ = s.set_write_timeout(Some(limit));
    // A server may close before reading all of a hostile query: what it answered still counts.
    let wrote = s.write_all(payload);
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(tf!(
                "no end of answer within {:.1} s ({} bytes received): the server must close the connection once it has answered",
                "pas de fin de réponse en {:.1} s ({} octets reçus) : le serveur doit fermer la connexion une fois sa réponse envoyée",
                limit.as_secs_f64(),
                got.len()
            ));
        }
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) if got.len() + n <= MAX_ANSWER => got.extend_from_slice(&buf[..n]),
            Ok(_) => {
                return Err(tf!(
                    "more than {MAX_ANSWER} bytes",
                    "plus de {MAX_ANSWER} octets"
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(tf!(
                    "no answer within {:.1} s ({} bytes received)",
                    "pas de réponse en {:.1} s ({} octets reçus)",
                    limit.as_secs_f64(),
                    got.len()
                ))
            }
            Err(e) if got.is_empty() || wrote.is_ok() => {
                return Err(tf!(
                    "recv: {e} after {} bytes",
                    "recv : {e} après {} octets",
                    got.len()
                ))
            }
            Err(_) => break,
        }
    }
    Ok(got)
}

/// SIGTERM to the daemon (the grader's child: it is the subreaper): its exit status within
/// `term`, else None (then it is killed).
fn stop(pid: i32, term: Duration) -> Option<i32> {
    let p = Pid::from_raw(pid);
    let fd = crate::process::pidfd_open(p).ok()?;
    let _ = crate::process::signal(p, Signal::SIGTERM);
    let ended = crate::signals::poll_fds(&[std::os::fd::AsFd::as_fd(&fd)], Some(term))
        .map(|r| r[0])
        .unwrap_or(false);
    if !ended {
        let _ = crate::process::signal(p, Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(p, None);
        return None;
    }
    nix::sys::wait::waitpid(p, None)
        .ok()
        .map(|st| crate::process::shell_status(&st))
}

/// The client phase's answer, from the seed: numbered lines, CRLF as RFC 1288 has them.
fn client_answer(seed: u64) -> String {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0xc11e);
    let mut t = String::new();
    let mut i = 0;
    while t.len() < CLIENT_ANSWER {
        t.push_str(&format!("{i:05} {}\r\n", words(&mut rng, 8)));
        i += 1;
    }
    t
}

/// The grader's finger server for the client: one connection, its query line, the answer in
/// three writes (the pauses make the client's recv calls return parts), then our close.
fn serve_client(l: TcpListener, text: &str, start: Duration, answer: Duration) -> ClientSeen {
    let mut seen = ClientSeen::default();
    let ready = crate::signals::poll_fds(&[std::os::fd::AsFd::as_fd(&l)], Some(start))
        .map(|r| r[0])
        .unwrap_or(false);
    if !ready {
        seen.query = Some(Err(tf!(
            "no connection within {:.1} s",
            "aucune connexion en {:.1} s",
            start.as_secs_f64()
        )));
        return seen;
    }
    let Ok((mut s, _)) = l.accept() else {
        seen.query = Some(Err("accept failed".into()));
        return seen;
    };
    // One deadline for the whole line: a client trickling bytes cannot hold the grader.
    let deadline = Instant::now() + answer;
    let mut line = Vec::new();
    let mut buf = [0u8; 1024];
    let q = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = s.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        if left.is_zero() {
            break Err(tf!(
                "no query line (ending LF) within {:.1} s",
                "pas de ligne de requête (finie par LF) en {:.1} s",
                answer.as_secs_f64()
            ));
        }
        match s.read(&mut buf) {
            Ok(0) => {
                break Err(tf!(
                    "the client closed without a query line ({:?})",
                    "le client a fermé sans ligne de requête ({:?})",
                    String::from_utf8_lossy(&line)
                ))
            }
            Ok(n) => {
                line.extend_from_slice(&buf[..n]);
                if let Some(i) = line.iter().position(|&b| b == b'\n') {
                    line.truncate(i);
                    break Ok(String::from_utf8_lossy(&line).into_owned());
                }
                if line.len() > 4096 {
                    break Err(tf!(
                        "a query line over 4096 bytes",
                        "une ligne de requête de plus de 4096 octets"
                    ));
                }
            }
            Err(e) => {
                break Err(tf!(
                    "no query line (ending LF) within {:.1} s: {e}",
                    "pas de ligne de requête (finie par LF) en {:.1} s : {e}",
                    answer.as_secs_f64()
                ))
            }
        }
    };
    let asked = q.is_ok();
    seen.query = Some(q);
    if asked {
        let _ = s.set_nodelay(true);
        let bytes = text.as_bytes();
        let cuts = [0, 1000, bytes.len() / 2, bytes.len()];
        for w in cuts.windows(2) {
            if s.write_all(&bytes[w[0]..w[1]]).is_err() {
                break;
            }
            // Not a synchronisation: a gap in the stream, which a correct client reads across.
            std::thread::sleep(PIECE_GAP);
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    // Until the client's close, so that our close sends no reset over unread data.
    let deadline = Instant::now() + answer;
    let _ = s.set_read_timeout(Some(answer));
    while Instant::now() < deadline && matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    seen
}

/// `ip` appears in `line` as a whole address (127.0.0.12 is not 127.0.0.1).
fn names_address(line: &str, ip: &str) -> bool {
    line.match_indices(ip).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + ip.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit() || c == '.')
            && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// One answer against what finger says here.
fn compare(a: &Asked, want: Option<&String>) -> std::result::Result<String, String> {
    let got = a.got.as_ref().map_err(|e| e.clone())?;
    let text = String::from_utf8_lossy(got);
    let Some(want) = want else {
        return Err(tf!("nothing to compare with", "rien à quoi comparer"));
    };
    let (g, w) = (normal(&text), normal(want));
    if g == w {
        return Ok(tf!(
            "{} bytes, as `finger -l {}` says here",
            "{} octets, comme `finger -l {}` ici",
            got.len(),
            a.login
        ));
    }
    let first_diff = g
        .lines()
        .zip(w.lines())
        .position(|(x, y)| x != y)
        .unwrap_or(g.lines().count().min(w.lines().count()));
    Err(tf!(
        "{} bytes, not what `finger -l {}` says here ({} bytes): line {} is {:?}, finger's {:?}",
        "{} octets, pas ce que dit `finger -l {}` ici ({} octets) : la ligne {} est {:?}, celle de finger {:?}",
        got.len(),
        a.login,
        want.len(),
        first_diff + 1,
        g.lines().nth(first_diff).unwrap_or(""),
        w.lines().nth(first_diff).unwrap_or("")
    ))
}

#[allow(clippy::too_many_arguments)]
fn judge(
    c: &crate::spec::Contract,
    phases: &[(&str, Outcome)],
    u: &Users,
    expected: &std::collections::BTreeMap<String, String>,
    p: &Played,
    d: &DaemonSeen,
    cs: &ClientSeen,
    text: &str,
) -> Vec<Check> {
    let empty = Outcome::default();
    let out = |name: &str| {
        phases
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(&empty, |(_, o)| o)
    };
    let daemon_out = out("fingerd");
    let mut k = Checks::new(c, daemon_out);
    let no_daemon = || {
        match (daemon_out.timed_out, daemon_out.main_status) {
        (true, _) => tf!(
            "not judged: fingerd did not return within the start bound; a daemon's launcher returns once it listens (fork, setsid, the parent exits)",
            "non jugé : fingerd n'a pas rendu la main dans le délai de démarrage ; le lanceur d'un démon rend la main une fois qu'il écoute (fork, setsid, le père se termine)"
        ),
        _ => tf!(
            "not judged: no process of the run listened on the port given by --port ({})",
            "non jugé : aucun processus de l'exécution n'écoutait sur le port donné par --port ({})",
            checks::stderr_tail(daemon_out)
        ),
    }
    };
    let status = daemon_out
        .main_status
        .map(|s| crate::process::shell_status(&s));

    // daemonized
    match (&d.facts, status) {
        (Some(f), Some(0)) => {
            let mut bad = Vec::new();
            if f.session == f.launcher_session {
                bad.push(tf!("it is still in its launcher's session ({}): call setsid() in the child", "il est encore dans la session de son lanceur ({}) : appelez setsid() dans l'enfant", f.session));
            }
            if f.has_tty {
                bad.push(tf!(
                    "it has a controlling terminal",
                    "il a un terminal de contrôle"
                ));
            }
            for (fd, target) in &f.stdio {
                if daemon_out.stdio_pipes.contains(target) || target.starts_with("/dev/pts") {
                    bad.push(tf!(
                        "fd {fd} is still its launcher's {target} (point 0, 1, 2 at /dev/null)",
                        "le fd {fd} est encore le {target} de son lanceur (faites pointer 0, 1, 2 sur /dev/null)"
                    ));
                }
            }
            if f.pid == daemon_out.main_pid {
                bad.push(tf!(
                    "it is the launched process itself",
                    "c'est le processus lancé lui-même"
                ));
            }
            let ok = bad.is_empty();
            k.add(
                "daemonized",
                ok,
                if ok {
                    tf!("the launcher exited 0; daemon {} runs in session {} of its own, with no terminal, its stdio not the launcher's", "le lanceur a fini avec 0 ; le démon {} tourne dans sa propre session {}, sans terminal, ses entrées-sorties ne sont pas celles du lanceur", f.pid, f.session)
                } else {
                    tf!("daemon {}: {}", "démon {} : {}", f.pid, bad.join("; "))
                },
            );
        }
        (Some(f), s) => k.add(
            "daemonized",
            false,
            tf!(
                "daemon {} listens, but its launcher ended with {}: it must exit 0 once the daemon is ready",
                "le démon {} écoute, mais son lanceur a fini avec {} : il doit finir avec 0 une fois le démon prêt",
                f.pid,
                s.map_or("?".into(), |s| s.to_string())
            ),
        ),
        (None, Some(n)) if n != 0 => k.add(
            "daemonized",
            false,
            tf!(
                "fingerd exited {n}: {}",
                "fingerd a fini avec le statut {n} : {}",
                checks::stderr_tail(daemon_out)
            ),
        ),
        (None, Some(_)) => k.add(
            "daemonized",
            false,
            tf!(
                "the launcher exited 0, but no process of the run listened on the port given by --port",
                "le lanceur a fini avec 0, mais aucun processus de l'exécution n'écoutait sur le port donné par --port"
            ),
        ),
        (None, None) => k.add("daemonized", false, no_daemon()),
    }

    // pidfile
    match (d.pid, d.pidfile_pid) {
        (None, _) => k.skip("pidfile", no_daemon()),
        (Some(pid), Some(q)) if q == pid => k.add(
            "pidfile",
            true,
            tf!(
                "DIR/fingerd.pid holds {pid}, the pid of the process listening on the port",
                "DIR/fingerd.pid contient {pid}, le pid du processus qui écoute sur le port"
            ),
        ),
        (Some(pid), Some(q)) => k.add(
            "pidfile",
            false,
            tf!(
                "DIR/fingerd.pid holds {q}, but {pid} listens on the port: write the daemon's own pid, after the forks",
                "DIR/fingerd.pid contient {q}, mais c'est {pid} qui écoute sur le port : écrivez le pid du démon lui-même, après les fork"
            ),
        ),
        (Some(_), None) => k.add(
            "pidfile",
            false,
            tf!(
                "no pid in DIR/fingerd.pid (a regular file holding the daemon's pid as text)",
                "pas de pid dans DIR/fingerd.pid (un fichier ordinaire contenant le pid du démon en texte)"
            ),
        ),
    }

    let answer_check =
        |k: &mut Checks, name: &str, a: &Option<Asked>, want: Option<&String>| match a {
            None => k.skip(name, no_daemon()),
            Some(a) => match compare(a, want) {
                Ok(t) => k.add(name, true, t),
                Err(t) => k.add(name, false, t),
            },
        };
    answer_check(&mut k, "answers-user", &p.known, expected.get(&u.known));
    match &p.missing {
        None => k.skip("answers-missing-user", no_daemon()),
        Some(a) => match &a.got {
            Ok(g) if String::from_utf8_lossy(g).to_lowercase().contains("no such user") => k.add(
                "answers-missing-user",
                true,
                tf!(
                    "{}: the answer says \"no such user\", as finger does",
                    "{} : la réponse dit « no such user », comme finger",
                    a.login
                ),
            ),
            Ok(g) => k.add(
                "answers-missing-user",
                false,
                tf!(
                    "{}: the answer ({} bytes: {}) does not say \"no such user\": finger writes it on its stderr, which the answer must carry too",
                    "{} : la réponse ({} octets : {}) ne dit pas « no such user » : finger l'écrit sur sa sortie d'erreur, que la réponse doit porter aussi",
                    a.login,
                    g.len(),
                    crate::inet::shown(&g[..g.len().min(80)])
                ),
            ),
            Err(e) => k.add("answers-missing-user", false, format!("{}: {e}", a.login)),
        },
    }
    match &u.long {
        None => k.skip(
            "long-answer",
            tf!(
                "not judged: a user with a 100 KB plan needs the box's own passwd (grading as root)",
                "non jugé : un utilisateur au plan de 100 Ko demande le passwd propre de la boîte (correction en root)"
            ),
        ),
        Some(l) => answer_check(&mut k, "long-answer", &p.long, expected.get(l)),
    }

    // concurrent-clients
    if p.held.is_none() {
        k.skip("concurrent-clients", no_daemon());
    } else {
        let want = expected.get(&u.known);
        let bad: Vec<String> = p
            .concurrent
            .iter()
            .filter_map(|a| compare(a, want).err())
            .collect();
        let held = p.held.as_ref().map(|a| compare(a, want));
        match (bad.first(), held) {
            (None, Some(Ok(_))) => k.add(
                "concurrent-clients",
                true,
                tf!(
                    "{} clients answered while another held its connection without a query; then that one too",
                    "{} clients servis pendant qu'un autre gardait sa connexion sans requête ; puis celui-là aussi",
                    p.concurrent.len()
                ),
            ),
            (Some(e), _) => k.add(
                "concurrent-clients",
                false,
                tf!(
                    "while one client held its connection without a query, another was not answered: {e} (serve each client in a thread or a child process)",
                    "pendant qu'un client gardait sa connexion sans requête, un autre n'a pas été servi : {e} (servez chaque client dans un thread ou un processus fils)"
                ),
            ),
            (None, held) => k.add(
                "concurrent-clients",
                false,
                tf!(
                    "the others were answered, not the client that waited before its query: {}",
                    "les autres ont été servis, pas le client qui a attendu avant sa requête : {}",
                    held.and_then(|h| h.err()).unwrap_or_default()
                ),
            ),
        }
    }

    // logs-queries
    match (&d.log, d.pid) {
        (_, None) => k.skip("logs-queries", no_daemon()),
        (None, _) => k.add(
            "logs-queries",
            false,
            tf!(
                "no DIR/fingerd.log (a regular file, one line per query)",
                "pas de DIR/fingerd.log (un fichier ordinaire, une ligne par requête)"
            ),
        ),
        (Some(log), _) => {
            let lines: Vec<&str> = log.lines().collect();
            let mut used = vec![false; lines.len()];
            let mut missing = Vec::new();
            let asked = p.well_formed();
            for a in &asked {
                let ip = a.from.to_string();
                match (0..lines.len()).find(|&i| {
                    !used[i] && lines[i].contains(&a.login) && names_address(lines[i], &ip)
                }) {
                    Some(i) => used[i] = true,
                    None => missing.push(format!("{} from {ip}", a.login)),
                }
            }
            let ok = missing.is_empty();
            k.add(
                "logs-queries",
                ok,
                if ok {
                    tf!(
                        "a line per query ({}), each with the login and the client's address",
                        "une ligne par requête ({}), chacune avec le login et l'adresse du client",
                        asked.len()
                    )
                } else {
                    tf!(
                        "{} of {} queries have no log line naming their login and client address (the grader's clients each came from their own 127.0.0.x), e.g. {}",
                        "{} requêtes sur {} n'ont pas de ligne de journal avec leur login et l'adresse du client (chaque client du correcteur venait de sa propre 127.0.0.x), par exemple {}",
                        missing.len(),
                        asked.len(),
                        missing[0]
                    )
                },
            );
        }
    }

    // hostile-queries
    if d.pid.is_none() {
        k.skip("hostile-queries", no_daemon());
    } else {
        let after = p.after.as_ref().map(|a| compare(a, expected.get(&u.known)));
        let ok = d.pwned.is_empty() && d.alive_after_hostile && matches!(after, Some(Ok(_)));
        let why = if !d.pwned.is_empty() {
            tf!(
                "queries ran a command, their marker files exist: {} (the query reached a shell: run finger from an argv, never \"finger \" + query through a shell)",
                "des requêtes ont exécuté une commande, leurs fichiers témoins existent : {} (la requête a atteint un shell : lancez finger depuis un argv, jamais \"finger \" + requête par un shell)",
                d.pwned.join(", ")
            )
        } else if !d.alive_after_hostile {
            tf!(
                "the daemon died during the hostile queries (the last sent: {})",
                "le démon est mort pendant les requêtes hostiles (la dernière envoyée : {})",
                p.hostile.last().map(|h| h.0.clone()).unwrap_or_default()
            )
        } else {
            tf!(
                "after them, a plain query was not answered right: {}",
                "après elles, une requête simple n'a pas été servie correctement : {}",
                after.and_then(|a| a.err()).unwrap_or_default()
            )
        };
        k.add(
            "hostile-queries",
            ok,
            if ok {
                tf!(
                    "{} hostile queries (shell metacharacters, a second line, an overlong line, a NUL): no command ran, the daemon still answers",
                    "{} requêtes hostiles (métacaractères du shell, une seconde ligne, une ligne trop longue, un NUL) : aucune commande exécutée, le démon répond encore",
                    p.hostile.len()
                )
            } else {
                why
            },
        );
    }

    // sigterm
    if let Some(pid) = d.pid {
        let mut bad = Vec::new();
        match d.term_status {
            None => bad.push(tf!(
                "still running {:.1} s after SIGTERM: killed",
                "encore en marche {:.1} s après SIGTERM : tué",
                c.bound_ms("term_ms", 2000) as f64 / 1000.0
            )),
            Some(_) if d.pidfile_left => bad.push(tf!(
                "it ended, but DIR/fingerd.pid is still there (remove it on SIGTERM)",
                "il a fini, mais DIR/fingerd.pid est encore là (supprimez-le sur SIGTERM)"
            )),
            Some(_) => {}
        }
        if d.port_held_after {
            bad.push(tf!(
                "the port is still held after it ended (a child process kept the listening socket)",
                "le port est encore pris après sa fin (un processus fils a gardé la socket d'écoute)"
            ));
        }
        let ok = bad.is_empty();
        k.add(
            "sigterm",
            ok,
            if ok {
                tf!(
                    "daemon {pid} ended on SIGTERM (status {}), its pidfile removed, its port free",
                    "le démon {pid} a fini sur SIGTERM (statut {}), son fichier de pid supprimé, son port libre",
                    d.term_status.unwrap_or(0)
                )
            } else {
                bad.join("; ")
            },
        );
    } else {
        k.skip("sigterm", no_daemon());
    }

    // The client.
    let cli = out("fingercli");
    let cli_status = cli.main_status.map(|s| crate::process::shell_status(&s));
    match &cs.query {
        Some(Ok(q)) if q.trim_end_matches('\r') == u.known => k.add(
            "client-query",
            true,
            tf!(
                "the client sent {:?} then its line end",
                "le client a envoyé {:?} puis sa fin de ligne",
                u.known
            ),
        ),
        Some(Ok(q)) => k.add(
            "client-query",
            false,
            tf!(
                "the query line was {:?}, not the login given by --login ({:?})",
                "la ligne de requête était {:?}, pas le login donné par --login ({:?})",
                q,
                u.known
            ),
        ),
        Some(Err(e)) => k.add("client-query", false, e.clone()),
        None => k.add("client-query", false, checks::stderr_tail(cli)),
    }
    let want: Vec<String> = text
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    let got: Vec<String> = cli
        .stdout_lines
        .iter()
        .map(|(_, l)| l.trim_end_matches('\r').to_string())
        .collect();
    let got_trimmed: Vec<&String> = {
        let mut g: Vec<&String> = got.iter().collect();
        while g.last().is_some_and(|l| l.is_empty()) {
            g.pop();
        }
        g
    };
    let same =
        got_trimmed.len() == want.len() && got_trimmed.iter().zip(&want).all(|(a, b)| *a == b);
    if !matches!(cs.query, Some(Ok(_))) {
        k.skip(
            "client-whole-answer",
            tf!(
                "not judged: the client sent no query line",
                "non jugé : le client n'a pas envoyé de ligne de requête"
            ),
        );
    } else if same && cli_status == Some(0) {
        k.add(
            "client-whole-answer",
            true,
            tf!(
                "all {} lines ({} bytes, sent in three parts) printed, then exit 0",
                "les {} lignes ({} octets, envoyés en trois parties) affichées, puis sortie 0",
                want.len(),
                text.len()
            ),
        );
    } else {
        let at = got_trimmed
            .iter()
            .zip(&want)
            .position(|(a, b)| *a != b)
            .unwrap_or(got_trimmed.len().min(want.len()));
        k.add(
            "client-whole-answer",
            false,
            if same {
                tf!(
                    "the answer was printed whole, but the client ended with {}",
                    "la réponse a été affichée entière, mais le client a fini avec {}",
                    cli_status.map_or("?".into(), |s| s.to_string())
                )
            } else if got_trimmed.len() > want.len() {
                tf!(
                    "printed {} lines for the answer's {}: line breaks were added (write each piece as received, without a newline of your own: print(..., end=\"\") or sys.stdout.buffer.write)",
                    "{} lignes affichées pour les {} de la réponse : des sauts de ligne ont été ajoutés (écrivez chaque morceau tel que reçu, sans saut de ligne à vous : print(..., end=\"\") ou sys.stdout.buffer.write)",
                    got_trimmed.len(),
                    want.len()
                )
            } else {
                tf!(
                    "printed {} of the answer's {} lines, the first wrong or missing being line {} (the answer came in three parts: recv until it returns 0, the server's close)",
                    "{} des {} lignes de la réponse affichées, la première fausse ou manquante étant la ligne {} (la réponse arrivait en trois parties : recv jusqu'à ce qu'il rende 0, la fermeture du serveur)",
                    got_trimmed.len(),
                    want.len(),
                    at + 1
                )
            },
        );
    }
    let refused = out("fingercli-refused");
    let lines: Vec<&str> = std::str::from_utf8(&refused.stderr)
        .unwrap_or("")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let client_asked = matches!(cs.query, Some(Ok(_)));
    if !client_asked {
        k.skip(
            "client-refused",
            tf!(
                "not judged: the client sent no query to a server that listened (any program that stops at once with one line would pass it)",
                "non jugé : le client n'a envoyé aucune requête à un serveur qui écoutait (tout programme qui s'arrête aussitôt avec une ligne le passerait)"
            ),
        );
    } else {
        match refused.main_status.map(|s| crate::process::shell_status(&s)) {
            _ if refused.timed_out => k.add(
                "client-refused",
                false,
                tf!(
                    "did not end within {:.1} s with nobody on the port",
                    "n'a pas fini en {:.1} s sans personne sur le port",
                    c.bound_ms("refuse_ms", 5000) as f64 / 1000.0
                ),
            ),
            Some(s) if s != 0 && s < 128 && lines.len() == 1 => k.add(
                "client-refused",
                true,
                tf!(
                    "nobody on the port: status {s}, one line: {}",
                    "personne sur le port : statut {s}, une ligne : {}",
                    lines[0]
                ),
            ),
            s => k.add(
                "client-refused",
                false,
                tf!(
                    "nobody on the port: status {}, {} lines on stderr (want a status other than 0 and one line saying the connection was refused)",
                    "personne sur le port : statut {}, {} lignes sur stderr (attendu : un statut autre que 0 et une ligne disant que la connexion est refusée)",
                    s.map_or("?".into(), |s| s.to_string()),
                    lines.len()
                ),
            ),
        }
    }

    // no-leftover-processes, timeout
    let killed: Vec<String> = d
        .leftovers
        .iter()
        .map(|(p, c)| format!("{p} {c}"))
        .chain(
            // A launch that timed out was killed for that: the timeout check says so.
            phases
                .iter()
                .filter(|(_, o)| !o.timed_out)
                .flat_map(|(_, o)| o.killed.iter().map(|(p, c)| format!("{p} {c}"))),
        )
        .collect();
    if d.pid.is_none() && !client_asked {
        k.skip("no-leftover-processes", checks::skip_idle());
    } else {
        k.add(
            "no-leftover-processes",
            killed.is_empty(),
            if killed.is_empty() {
                tf!(
                    "nothing of the box ran once the daemon had ended and the clients had exited",
                    "plus rien de la boîte ne tournait une fois le démon fini et les clients sortis"
                )
            } else {
                tf!(
                    "still running, killed: {}",
                    "encore en marche, tués : {}",
                    killed.join(", ")
                )
            },
        );
    }
    if d.pid.is_none() && !client_asked {
        k.skip("timeout", checks::skip_idle());
        return k.list;
    }
    let late: Vec<&str> = phases
        .iter()
        .filter(|(n, o)| o.timed_out && *n != "fingercli-refused")
        .map(|(n, _)| *n)
        .collect();
    k.add(
        "timeout",
        late.is_empty(),
        if late.is_empty() {
            tf!(
                "every launch ended within its bound",
                "chaque lancement a fini dans son délai"
            )
        } else {
            tf!(
                "did not end within its bound: {}",
                "pas fini dans son délai : {}",
                late.join(", ")
            )
        },
    );
    k.list
}

fn transcript_text(
    env: &RunEnv,
    phases: &[(&str, Outcome)],
    p: &Played,
    d: &DaemonSeen,
    checks: &[Check],
) -> String {
    let mut t = tf!(
        "lab 9, seed {}\nreplay this run: {}\n",
        "lab 9, graine {}\nrejouer cette exécution : {}\n",
        env.seed,
        env.replay
    );
    for (name, o) in phases {
        let stdout: Vec<&str> = o
            .stdout_lines
            .iter()
            .take(20)
            .map(|(_, l)| l.as_str())
            .collect();
        t.push_str(&tf!(
            "\n-- {name}: {}\nstdout (first 20 lines):\n{}\nstderr:\n{}\n",
            "\n-- {name} : {}\nstdout (20 premières lignes) :\n{}\nstderr :\n{}\n",
            o.main_status
                .map_or(tf!("did not end", "n'a pas fini"), |s| {
                    crate::process::describe(&s)
                }),
            stdout.join("\n"),
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    if let Some(f) = &d.facts {
        t.push_str(&tf!(
            "\n-- the daemon, seen from outside\n{}\n",
            "\n-- le démon, vu de l'extérieur\n{}\n",
            f.describe()
        ));
    }
    t.push_str(&tf!("\n-- queries\n", "\n-- requêtes\n"));
    for a in p.well_formed() {
        t.push_str(&format!(
            "{:?} from {}: {}\n",
            a.login,
            a.from,
            match &a.got {
                Ok(g) => tf!("{} bytes", "{} octets", g.len()),
                Err(e) => e.clone(),
            }
        ));
    }
    for (q, got) in &p.hostile {
        t.push_str(&format!("{q}: {got}\n"));
    }
    if let Some(log) = &d.log {
        t.push_str(&tf!(
            "\n-- DIR/fingerd.log (first 40 lines)\n",
            "\n-- DIR/fingerd.log (40 premières lignes)\n"
        ));
        for l in log.lines().take(40) {
            t.push_str(&format!("{}\n", harness::clip_line(l.as_bytes(), 0)));
        }
    }
    t.push_str(&tf!("\n-- checks\n", "\n-- vérifications\n"));
    for c in checks {
        t.push_str(&format!(
            "{} {}: {}\n",
            if c.skipped {
                "SKIP"
            } else if c.passed {
                "OK  "
            } else {
                "FAIL"
            },
            c.name,
            c.detail
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_matched_whole() {
        assert!(names_address("ada from 127.0.0.12:5000", "127.0.0.12"));
        assert!(!names_address("ada from 127.0.0.12:5000", "127.0.0.1"));
        assert!(!names_address("ada from 127.0.0.112", "127.0.0.11"));
        assert!(names_address("('127.0.0.13', 40000) ada", "127.0.0.13"));
    }

    #[test]
    fn answers_compare_without_cr_and_times() {
        let a = "Login: ada\r\nOn since Mon Nov 26 11:55 (CET) on tty8\r\n   3 hours idle\r\nNo Plan.\r\n\r\n";
        let b = "Login: ada\nOn since Tue Dec  1 09:01 (CET) on tty8\n   12 hours idle\nNo Plan.";
        assert_eq!(normal(a), normal(b));
        assert_ne!(normal(a), normal("Login: bob\nNo Plan."));
        assert_ne!(normal("Plan:\nline 1"), normal("Plan:\nline 2"));
    }
}
