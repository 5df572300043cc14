//! Lab 4's contract, judged. The implementation plays the dispatcher and the workers, started by
//! the reference watchdog (main here) as `IMPL dispatcher --workers K --dir DIR` and `IMPL worker
//! --id I --dir DIR --work-ms W`; the grader is every client, speaking the frame protocol of
//! labs/lab4-client/README.md from its own threads, so it can also send what no client should.
//!
//! Phases, each started when the previous one has ended (never on a timer): a first client served
//! (warm-up); C concurrent clients; all K workers held by K clients, then one more client, who
//! must be told BUSY; malformed frames; a worker SIGKILLed mid-request, then K concurrent clients
//! served again; SIGTERM to the watchdog.

use crate::frame;
use crate::grade::checks::{Checks, SKIP_TIMEOUT};
use crate::grade::harness::{Action, Outcome, Script, View};
use crate::grade::report::Check;
use crate::spec::Contract;
use nix::sys::signal::Signal;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What one client got.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Handed to the worker at `worker` (pid of the process listening there), answered right.
    Served {
        worker: String,
        pid: i32,
    },
    Busy,
    /// The dispatcher's socket could not be reached (not bound yet, or gone).
    Unreachable(String),
    /// A wrong answer, a closed connection, an error reply: the text says which.
    Failed(String),
    /// No answer within the client's patience.
    Hung(String),
}

impl Answer {
    fn ok(&self) -> bool {
        matches!(self, Answer::Served { .. } | Answer::Busy)
    }
}

/// One finished client: its answer and when it came.
#[derive(Debug, Clone)]
pub struct Done {
    pub answer: Answer,
    pub at: Instant,
}

/// A client connects, gets a socket whose connect and reads give up after `patience`.
fn connect(path: &Path, patience: Duration) -> std::io::Result<UnixStream> {
    use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, UnixAddr};
    use nix::sys::time::TimeVal;
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // A full listen backlog makes connect block: SO_SNDTIMEO bounds it (and writes).
    let tv = TimeVal::new(patience.as_secs() as i64, patience.subsec_micros() as i64);
    socket::setsockopt(&fd, sockopt::SendTimeout, &tv)?;
    socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &UnixAddr::new(path)?)?;
    let s = UnixStream::from(fd);
    s.set_read_timeout(Some(patience))?;
    Ok(s)
}

/// `connect`, again every 20 ms while nobody listens there (a server being restarted).
fn connect_again(path: &Path, patience: Duration) -> std::io::Result<UnixStream> {
    let start = Instant::now();
    loop {
        match connect(path, patience) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
                ) && start.elapsed() < patience =>
            {
                std::thread::sleep(Duration::from_millis(20))
            }
            other => return other,
        }
    }
}

/// Reads one frame; the error is said as the student should read it.
fn read_answer(s: &mut UnixStream, who: &str, patience: Duration) -> Result<String, Answer> {
    match frame::read(s) {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err(Answer::Failed(format!(
            "{who} closed the connection without answering"
        ))),
        Err(frame::FrameError::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Err(Answer::Hung(format!(
                "no answer from {who} in {:.1} s",
                patience.as_secs_f64()
            )))
        }
        Err(e) => Err(Answer::Failed(format!("{who}: {e}"))),
    }
}

/// One whole client: HELLO, then REQ to the worker it is sent to. `sent` is told the worker's
/// pid (SO_PEERCRED: the process that listens there) once the request is on its way.
fn client(dir: &Path, text: &str, patience: Duration, sent: Option<mpsc::Sender<i32>>) -> Done {
    let answer = (|| {
        let path = dir.join("dispatcher.sock");
        let mut d = connect(&path, patience)
            .map_err(|e| Answer::Unreachable(format!("connect DIR/dispatcher.sock: {e}")))?;
        frame::write(&mut d, "HELLO")
            .map_err(|e| Answer::Failed(format!("sending HELLO to the dispatcher: {e}")))?;
        let m = read_answer(&mut d, "the dispatcher", patience)?;
        drop(d);
        if m == "BUSY" {
            return Err(Answer::Busy);
        }
        let Some(addr) = m.strip_prefix("WORKER ") else {
            return Err(Answer::Failed(format!(
                "the dispatcher answered HELLO with {:?} (want WORKER <path> or BUSY)",
                cut(&m)
            )));
        };
        let mut w = connect(Path::new(addr), patience)
            .map_err(|e| Answer::Failed(format!("connect to the worker at {addr}: {e}")))?;
        let pid = nix::sys::socket::getsockopt(&w, nix::sys::socket::sockopt::PeerCredentials)
            .map(|c| c.pid())
            .unwrap_or(0);
        frame::write(&mut w, &format!("REQ {text}"))
            .map_err(|e| Answer::Failed(format!("sending REQ to the worker at {addr}: {e}")))?;
        if let Some(tx) = sent {
            let _ = tx.send(pid);
        }
        let r = read_answer(&mut w, &format!("the worker at {addr}"), patience)?;
        let want = format!("RESP {}", text.to_uppercase());
        if r != want {
            return Err(Answer::Failed(format!(
                "the worker at {addr} answered {:?} (want {want:?})",
                cut(&r)
            )));
        }
        Ok(Answer::Served {
            worker: addr.to_string(),
            pid,
        })
    })()
    .unwrap_or_else(|a| a);
    Done {
        answer,
        at: Instant::now(),
    }
}

fn cut(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Each malformed case: what was sent, and whether the reply was right (else why not).
pub type Cases = Vec<(String, Result<(), String>)>;

/// The malformed frames, each on its own connection, and what came back.
fn malformed(dir: &Path, patience: Duration) -> Cases {
    let disp = dir.join("dispatcher.sock");
    let mut results = Vec::new();
    // (what, bytes, whether an ERR reply is owed: a cut frame can only be closed)
    let cases: [(&str, Vec<u8>, bool); 4] = [
        (
            "a length of 2 GiB",
            [&0x7fff_ffffu32.to_be_bytes()[..], b"HELLO"].concat(),
            true,
        ),
        (
            "a frame that is not UTF-8",
            vec![0, 0, 0, 4, 0xff, 0xfe, 0xfd, 0xfc],
            true,
        ),
        (
            "an unknown message GIMME",
            [&5u32.to_be_bytes()[..], b"GIMME"].concat(),
            true,
        ),
        (
            "a frame cut short (length 10, 2 bytes, then end of stream)",
            vec![0, 0, 0, 10, b'H', b'E'],
            false,
        ),
    ];
    for (what, bytes, owed) in cases {
        let started = Instant::now();
        let r = (|| {
            let mut s = connect_again(&disp, patience).map_err(|e| format!("connect: {e}"))?;
            s.write_all(&bytes).map_err(|e| format!("write: {e}"))?;
            let _ = s.shutdown(std::net::Shutdown::Write);
            expect_err(&mut s, "the dispatcher", owed, patience)
        })();
        results.push((format!("dispatcher sent {what}"), r));
        if started.elapsed() >= patience {
            // A dispatcher that did not answer in all that time will not answer the next ones.
            results.push((
                "the other cases".into(),
                Err("not tried: the dispatcher is not answering".into()),
            ));
            return results;
        }
    }
    // A worker reserved for us, sent a frame that is not a request.
    let r = (|| {
        let mut d = connect_again(&disp, patience).map_err(|e| format!("connect: {e}"))?;
        frame::write(&mut d, "HELLO").map_err(|e| format!("HELLO: {e}"))?;
        let m = read_answer(&mut d, "the dispatcher", patience).map_err(|a| format!("{a:?}"))?;
        let Some(addr) = m.strip_prefix("WORKER ") else {
            return Err(format!(
                "could not get a worker to test (dispatcher said {:?})",
                cut(&m)
            ));
        };
        let mut w = connect(Path::new(addr), patience).map_err(|e| format!("connect: {e}"))?;
        w.write_all(&[0, 0, 0, 3, 0xc3, 0x28, 0xa0])
            .map_err(|e| format!("write: {e}"))?;
        expect_err(&mut w, "the worker", true, patience)
    })();
    results.push(("worker sent a frame that is not UTF-8".into(), r));
    results
}

/// After a bad frame: an `ERR ...` frame (when owed), or the connection closed; never silence.
fn expect_err(s: &mut UnixStream, who: &str, owed: bool, patience: Duration) -> Result<(), String> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match s.read(&mut len[got..]) {
            Ok(0) if got == 0 && !owed => return Ok(()),
            Ok(0) if got == 0 => return Err(format!("{who} closed without an ERR reply")),
            Ok(0) => return Err(format!("{who} closed inside its reply")),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!(
                    "{who} neither answered nor closed in {:.1} s",
                    patience.as_secs_f64()
                ))
            }
            // The server closed with our bytes unread: a reset, which is a close.
            Err(e) if !owed && e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(format!("{who}: {e}")),
        }
    }
    let n = (u32::from_be_bytes(len) as usize).min(frame::MAX_FRAME);
    let mut body = vec![0u8; n];
    s.read_exact(&mut body)
        .map_err(|e| format!("{who}: reply cut short: {e}"))?;
    let text = String::from_utf8_lossy(&body);
    if text.starts_with("ERR") {
        Ok(())
    } else {
        Err(format!("{who} replied {:?} (want ERR ...)", cut(&text)))
    }
}

#[derive(Debug)]
enum Phase {
    Warmup {
        since: Duration,
    },
    Crowd,
    /// Holders being placed on every worker; then the extra client.
    Hold {
        since: Duration,
    },
    Malformed {
        from: Duration,
    },
    Crash {
        since: Duration,
    },
    Recover {
        since: Duration,
    },
    Terminate,
    Done,
}

/// What the grader saw, phase by phase (None: the phase never ran).
#[derive(Debug, Default)]
pub struct Seen {
    pub warmup: Option<Result<(), String>>,
    pub crowd: Option<Vec<Done>>,
    pub busy: Option<Result<String, String>>,
    pub malformed: Option<Cases>,
    /// Server exits during the malformed phase: (pid, when).
    pub malformed_exits: Vec<i32>,
    pub malformed_after: Option<Answer>,
    pub crash: Option<Result<String, String>>,
    pub term_at: Option<Duration>,
}

pub struct Driver {
    dir: PathBuf,
    k: usize,
    clients: usize,
    patience: Duration,
    phase: Phase,
    pub seen: Seen,
    jobs: Vec<JoinHandle<Done>>,
    malformed_job: Option<JoinHandle<(Cases, Answer)>>,
    holders: Holders,
    extra: Option<JoinHandle<Done>>,
    /// The crash client, the worker pid it was given, when it was killed, by the grader's clock.
    crash_client: Option<(JoinHandle<Done>, mpsc::Receiver<i32>)>,
    victim: Option<(i32, Duration)>,
    crash_note: String,
    last_try: Option<Instant>,
    seed: u64,
}

/// K clients placed on K distinct workers at once (a BUSY one tries again).
#[derive(Default)]
struct Holders {
    jobs: Vec<(JoinHandle<Done>, mpsc::Receiver<i32>, Option<i32>)>,
    round: u32,
}

impl Driver {
    pub fn new(dir: &Path, k: u64, work_ms: u64, clients: u64, seed: u64) -> Driver {
        Driver {
            dir: dir.to_path_buf(),
            k: k.max(1) as usize,
            clients: clients.max(1) as usize,
            patience: Duration::from_millis(2 * work_ms) + Duration::from_secs(5),
            phase: Phase::Warmup {
                since: Duration::ZERO,
            },
            seen: Seen::default(),
            jobs: Vec::new(),
            malformed_job: None,
            holders: Holders::default(),
            extra: None,
            crash_client: None,
            victim: None,
            crash_note: String::new(),
            last_try: None,
            seed,
        }
    }

    fn spawn(&self, text: String, sent: Option<mpsc::Sender<i32>>) -> JoinHandle<Done> {
        let (dir, p) = (self.dir.clone(), self.patience);
        std::thread::spawn(move || client(&dir, &text, p, sent))
    }

    fn text(&self, what: &str, i: usize) -> String {
        format!("{what}-{i}-{:x}", self.seed & 0xffff)
    }

    /// Starts K holders (again, for those that were told BUSY).
    fn hold(&mut self) {
        self.holders.round += 1;
        let need = self.k - self.holders.jobs.len();
        for i in 0..need {
            let (tx, rx) = mpsc::channel();
            let text = self.text(&format!("hold{}", self.holders.round), i);
            let h = self.spawn(text, Some(tx));
            self.holders.jobs.push((h, rx, None));
        }
    }

    /// Holders whose request is being worked on: the worker pids. Finished ones (told BUSY,
    /// failed, or already answered) are dropped, to be replaced by `hold`.
    fn holding(&mut self) -> Vec<i32> {
        let mut keep = Vec::new();
        for (h, rx, pid) in self.holders.jobs.drain(..) {
            let pid = pid.or_else(|| rx.try_recv().ok());
            if h.is_finished() {
                let _ = h.join();
                continue;
            }
            keep.push((h, rx, pid));
        }
        self.holders.jobs = keep;
        self.holders.jobs.iter().filter_map(|j| j.2).collect()
    }

    /// Waits for every thread: none may outlive the run (the next run forks).
    pub fn finish(&mut self) {
        for h in self.jobs.drain(..) {
            let _ = h.join();
        }
        for (h, _, _) in self.holders.jobs.drain(..) {
            let _ = h.join();
        }
        if let Some(h) = self.extra.take() {
            let _ = h.join();
        }
        if let Some(h) = self.malformed_job.take() {
            let _ = h.join();
        }
        if let Some((h, _)) = self.crash_client.take() {
            let _ = h.join();
        }
    }

    fn phase_patience(&self) -> Duration {
        self.patience * 2
    }
}

/// Server processes (the watchdog's children) that exited in [from, to].
fn exits_between(v: &View<'_>, from: Duration) -> Vec<i32> {
    v.procs
        .values()
        .filter(|p| p.parent == v.main && p.exited.is_some_and(|e| e >= from))
        .map(|p| p.pid)
        .collect()
}

impl Script for Driver {
    fn tick(&mut self, v: &View<'_>) -> Vec<Action> {
        if v.main_end.is_some() {
            self.phase = Phase::Done;
            return vec![];
        }
        match self.phase {
            Phase::Warmup { since } => {
                if let Some(h) = self.jobs.pop() {
                    if !h.is_finished() {
                        self.jobs.push(h);
                        return vec![];
                    }
                    let d = h.join().map(|d| d.answer);
                    if let Ok(Answer::Served { .. }) = d {
                        self.seen.warmup = Some(Ok(()));
                        let texts: Vec<String> =
                            (0..self.clients).map(|i| self.text("client", i)).collect();
                        for t in texts {
                            let h = self.spawn(t, None);
                            self.jobs.push(h);
                        }
                        self.phase = Phase::Crowd;
                        return vec![];
                    }
                    if v.t - since > self.phase_patience() {
                        self.seen.warmup = Some(Err(format!(
                            "no client was served in {:.0} s; the last one got {:?}",
                            (v.t - since).as_secs_f64(),
                            d.unwrap_or(Answer::Failed("a grader thread panicked".into()))
                        )));
                        self.phase = Phase::Terminate;
                        return vec![];
                    }
                }
                // A client retrying every 20 ms until the servers are up (the watchdog starts
                // them; nothing tells us when they have bound their sockets).
                if self
                    .last_try
                    .is_none_or(|t| t.elapsed() >= Duration::from_millis(20))
                {
                    self.last_try = Some(Instant::now());
                    let h = self.spawn(self.text("warmup", 0), None);
                    self.jobs.push(h);
                }
            }
            Phase::Crowd => {
                if self.jobs.iter().all(|h| h.is_finished()) {
                    let done: Vec<Done> = self
                        .jobs
                        .drain(..)
                        .map(|h| {
                            h.join().unwrap_or(Done {
                                answer: Answer::Failed("a grader thread panicked".into()),
                                at: Instant::now(),
                            })
                        })
                        .collect();
                    self.seen.crowd = Some(done);
                    self.hold();
                    self.phase = Phase::Hold { since: v.t };
                }
            }
            Phase::Hold { since } => self.tick_hold(v, since),
            Phase::Malformed { from } => {
                if self.malformed_job.is_none() {
                    let (dir, p) = (self.dir.clone(), self.patience);
                    let text = self.text("after", 0);
                    self.malformed_job = Some(std::thread::spawn(move || {
                        let r = malformed(&dir, p);
                        // Then a normal client must still be served (BUSY: the reservation
                        // our bad request made may not be released yet; unreachable: a server
                        // that crashed is being restarted; try again).
                        let start = Instant::now();
                        loop {
                            let a = client(&dir, &text, p, None).answer;
                            let again = matches!(a, Answer::Busy | Answer::Unreachable(_));
                            if !again || start.elapsed() > p {
                                return (r, a);
                            }
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }));
                } else if self.malformed_job.as_ref().is_some_and(|h| h.is_finished()) {
                    if let Some(Ok((r, a))) = self.malformed_job.take().map(|h| h.join()) {
                        self.seen.malformed = Some(r);
                        self.seen.malformed_after = Some(a);
                    }
                    self.seen.malformed_exits = exits_between(v, from);
                    let (tx, rx) = mpsc::channel();
                    let h = self.spawn(self.text("crash", 0), Some(tx));
                    self.crash_client = Some((h, rx));
                    self.phase = Phase::Crash { since: v.t };
                }
            }
            Phase::Crash { since } => return self.tick_crash(v, since),
            Phase::Recover { since } => {
                // Rounds of K concurrent clients, until one round is served by K workers.
                if !self.jobs.iter().all(|h| h.is_finished()) {
                    return vec![];
                }
                let answers: Vec<Answer> = self
                    .jobs
                    .drain(..)
                    .filter_map(|h| h.join().ok())
                    .map(|d| d.answer)
                    .collect();
                let workers: std::collections::BTreeSet<i32> = answers
                    .iter()
                    .filter_map(|a| match a {
                        Answer::Served { pid, .. } => Some(*pid),
                        _ => None,
                    })
                    .collect();
                let replacement = v
                    .procs
                    .values()
                    .find(|p| p.parent == v.main && p.born > since && p.exited.is_none() && !p.gone)
                    .map(|p| p.pid);
                if workers.len() == self.k {
                    self.seen.crash = Some(Ok(format!(
                        "{}; then {} concurrent clients were served by {} workers{}",
                        self.crash_note,
                        self.k,
                        self.k,
                        replacement
                            .map(|p| format!(" (the replacement is pid {p})"))
                            .unwrap_or_default()
                    )));
                    self.phase = Phase::Terminate;
                    return vec![];
                }
                if v.t - since > self.patience {
                    self.seen.crash = Some(Err(format!(
                        "{}; but afterwards {} concurrent clients were never served by {} distinct workers (last round: {:?}){}: a restarted worker must bind its address again",
                        self.crash_note,
                        self.k,
                        self.k,
                        answers,
                        if replacement.is_none() { "; no new server process was started" } else { "" }
                    )));
                    self.phase = Phase::Terminate;
                    return vec![];
                }
                for i in 0..self.k {
                    let h = self.spawn(self.text("again", i), None);
                    self.jobs.push(h);
                }
            }
            Phase::Terminate => {
                self.seen.term_at = Some(v.t);
                self.phase = Phase::Done;
                return vec![Action::Signal(v.main, Signal::SIGTERM)];
            }
            Phase::Done => {}
        }
        vec![]
    }
}

impl Driver {
    /// Joins every holder (each has finished): their answers.
    fn finish_holders(&mut self) -> Vec<Answer> {
        self.holders
            .jobs
            .drain(..)
            .map(|(h, _, _)| {
                h.join()
                    .map(|d| d.answer)
                    .unwrap_or(Answer::Failed("a grader thread panicked".into()))
            })
            .collect()
    }

    fn tick_hold(&mut self, v: &View<'_>, since: Duration) {
        if let Some(extra) = &self.extra {
            // The verdict waits for every client: the extra's answer is judged against the
            // time the first holder was answered (a worker freed up).
            if !extra.is_finished() || !self.holders.jobs.iter().all(|j| j.0.is_finished()) {
                return;
            }
            let holder_times: Vec<Instant> = self
                .holders
                .jobs
                .drain(..)
                .filter_map(|(h, _, _)| h.join().ok())
                .map(|d| d.at)
                .collect();
            let first_free = holder_times.into_iter().min();
            let Some(Ok(d)) = self.extra.take().map(|h| h.join()) else {
                return;
            };
            self.seen.busy = Some(match d.answer {
                Answer::Busy => Ok(format!(
                    "with all {} workers busy, one more client was told BUSY",
                    self.k
                )),
                Answer::Served { worker, .. } if first_free.is_some_and(|f| d.at < f) => Err(
                    format!("with all {} workers busy, one more client was sent to {worker}, which was busy", self.k),
                ),
                Answer::Served { worker, .. } => Err(format!(
                    "with all {} workers busy, one more client was not told BUSY: it waited until a worker was free and was sent to {worker} — answer BUSY at once when no worker says YES",
                    self.k
                )),
                other => Err(format!(
                    "with all {} workers busy, one more client got {other:?} instead of BUSY",
                    self.k
                )),
            });
            self.phase = Phase::Malformed { from: v.t };
            return;
        }
        let pids = self.holding();
        let distinct: std::collections::BTreeSet<i32> = pids.iter().copied().collect();
        if pids.len() == self.k {
            if distinct.len() < self.k {
                self.seen.busy = Some(Err(format!(
                    "{} clients at once were sent to only {} distinct workers (pids {pids:?}): a worker was given two clients",
                    self.k,
                    distinct.len()
                )));
                self.finish_holders();
                self.phase = Phase::Malformed { from: v.t };
                return;
            }
            let h = self.spawn(self.text("extra", 0), None);
            self.extra = Some(h);
            return;
        }
        if self.holders.jobs.len() < self.k {
            self.hold();
        }
        if v.t - since > self.patience {
            self.seen.busy = Some(Err(format!(
                "could not make all {} workers busy: only {} clients were placed on a worker at once",
                self.k,
                distinct.len()
            )));
            self.finish_holders();
            self.phase = Phase::Malformed { from: v.t };
        }
    }

    fn tick_crash(&mut self, v: &View<'_>, since: Duration) -> Vec<Action> {
        let Some((h, rx)) = &self.crash_client else {
            return vec![];
        };
        if self.victim.is_none() {
            if let Ok(pid) = rx.try_recv() {
                // Only a process of the tree: SO_PEERCRED names whoever listens there.
                let ours = v
                    .procs
                    .get(&pid)
                    .is_some_and(|p| p.exited.is_none() && !p.gone && pid != v.main);
                if !ours {
                    self.seen.crash = Some(Err(format!(
                        "the worker socket the client was sent to is served by pid {pid}, not a process started under the watchdog"
                    )));
                    self.phase = Phase::Terminate;
                    return vec![];
                }
                self.victim = Some((pid, v.t));
                return vec![Action::Signal(pid, Signal::SIGKILL)];
            }
            if h.is_finished() {
                let d = self.crash_client.take().and_then(|(h, _)| h.join().ok());
                let again = d
                    .as_ref()
                    .is_some_and(|d| matches!(d.answer, Answer::Busy | Answer::Unreachable(_)));
                if again && v.t - since < self.phase_patience() {
                    let (tx, rx) = mpsc::channel();
                    let h = self.spawn(self.text("crash", 0), Some(tx));
                    self.crash_client = Some((h, rx));
                    return vec![];
                }
                self.seen.crash = Some(Err(format!(
                    "no worker could be given a request to kill: the client got {:?}",
                    d.map(|d| d.answer)
                )));
                self.phase = Phase::Terminate;
            } else if v.t - since > self.phase_patience() {
                self.seen.crash = Some(Err(
                    "the client to crash a worker under never sent its request".into(),
                ));
                self.phase = Phase::Terminate;
            }
            return vec![];
        }
        if !h.is_finished() {
            return vec![];
        }
        let (victim, at) = self.victim.unwrap_or_default();
        let d = self.crash_client.take().and_then(|(h, _)| h.join().ok());
        let answer = d.map(|d| d.answer);
        match answer {
            Some(Answer::Failed(why)) => {
                self.crash_note = format!(
                    "worker pid {victim} SIGKILLed mid-request; its client got an error ({why})"
                );
                self.phase = Phase::Recover { since: at };
            }
            Some(Answer::Hung(why)) => {
                self.seen.crash = Some(Err(format!(
                    "worker pid {victim} was SIGKILLed mid-request and its client hung ({why}): another process still holds the connection open"
                )));
                self.phase = Phase::Terminate;
            }
            other => {
                self.seen.crash = Some(Err(format!(
                    "worker pid {victim} was SIGKILLed mid-request, yet its client got {other:?}: the request was served by another process than the one listening"
                )));
                self.phase = Phase::Terminate;
            }
        }
        vec![]
    }
}

pub fn judge(out: &Outcome, seen: &Seen, dir: &Path, c: &Contract, timeout_s: f64) -> Vec<Check> {
    let mut k = Checks::new(c, out);
    let warm = match &seen.warmup {
        Some(Ok(())) => None,
        Some(Err(e)) => Some(format!(
            "not judged: {e}{}",
            crate::grade::checks::stderr_tail(out)
        )),
        None if out.timed_out => Some(SKIP_TIMEOUT.to_string()),
        None => Some(format!(
            "not judged: the watchdog ended ({}) before any client was served",
            out.main_status
                .map(|s| crate::process::describe(&s))
                .unwrap_or("?".into())
        )),
    };
    let phase = |k: &mut Checks, name: &str, r: Option<Result<String, String>>| match (r, &warm) {
        (Some(Ok(d)), _) => k.add(name, true, d),
        (Some(Err(d)), _) => k.add(name, false, d),
        (None, Some(w)) => k.add(name, false, w.clone()),
        (None, None) if out.timed_out => k.skip(name, SKIP_TIMEOUT),
        (None, None) => k.add(
            name,
            false,
            "not reached: the watchdog ended before this phase",
        ),
    };
    let crowd = seen.crowd.as_ref().map(|all| {
        let served = all
            .iter()
            .filter(|d| matches!(d.answer, Answer::Served { .. }))
            .count();
        let busy = all.iter().filter(|d| d.answer == Answer::Busy).count();
        let bad: Vec<String> = all
            .iter()
            .enumerate()
            .filter(|(_, d)| !d.answer.ok())
            .take(3)
            .map(|(i, d)| format!("client {i}: {:?}", d.answer))
            .collect();
        let n = all.len();
        if bad.is_empty() && served > 0 {
            Ok(format!(
                "{n} concurrent clients: {served} served, {busy} told BUSY"
            ))
        } else if bad.is_empty() {
            Err(format!(
                "{n} concurrent clients: none served, all told BUSY"
            ))
        } else {
            Err(format!(
                "{n} concurrent clients: {served} served, {busy} told BUSY, {} neither; {}",
                n - served - busy,
                bad.join("; ")
            ))
        }
    });
    phase(&mut k, "all-clients-served", crowd);
    phase(&mut k, "busy-reply", seen.busy.clone());
    let mal = seen.malformed.as_ref().map(|cases| {
        let mut bad: Vec<String> = cases
            .iter()
            .filter_map(|(what, r)| r.as_ref().err().map(|e| format!("{what}: {e}")))
            .collect();
        if !seen.malformed_exits.is_empty() {
            let pids: Vec<String> = seen.malformed_exits.iter().map(|p| p.to_string()).collect();
            bad.push(format!(
                "server pid {} exited meanwhile: a bad frame must get an ERR reply, never end a server",
                pids.join(", ")
            ));
        }
        match &seen.malformed_after {
            Some(Answer::Served { .. }) => {}
            other => bad.push(format!("a normal client afterwards got {other:?}")),
        }
        if bad.is_empty() {
            Ok(format!(
                "{} bad frames answered ERR or closed; no server ended; a normal client served after them",
                cases.len()
            ))
        } else {
            Err(bad.join("; "))
        }
    });
    phase(&mut k, "malformed-request", mal);
    phase(&mut k, "worker-crash", seen.crash.clone());
    k.no_zombies(out, &[], "process");
    k.no_leftover(out);
    k.no_leaked_files(
        out,
        dir,
        "each server removes its socket path when it ends (SIGTERM)",
    );
    k.timeout(
        out,
        format!(
            "the watchdog and its servers did not end within {timeout_s} s (SIGTERM at {:?} ms)",
            seen.term_at.map(|d| d.as_millis())
        ),
    );
    k.list
}
