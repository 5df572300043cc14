//! Lab 4's scenario: the phases, each started when the previous one has ended (never on a
//! timer) — a first client served (warm-up); C concurrent clients; all K workers held by K
//! clients, then one more client, who must be told BUSY; malformed frames; a worker SIGKILLed
//! mid-request, then K concurrent clients served again; SIGTERM to the watchdog.

use super::client::*;
use crate::grade::harness::{Action, Script, View};
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    /// How soon a worker must close a connection after its RESP (the contract's bound).
    close_within: Duration,
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
    pub fn new(
        dir: &Path,
        k: u64,
        work_ms: u64,
        clients: u64,
        seed: u64,
        close_within: Duration,
    ) -> Driver {
        Driver {
            dir: dir.to_path_buf(),
            close_within,
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
        let (dir, p, c) = (self.dir.clone(), self.patience, self.close_within);
        std::thread::spawn(move || client(&dir, &text, p, c, sent))
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
                        self.seen.warmup = Some(Err(tf!(
                            "no client was served in {:.0} s; the last one got {}",
                            "aucun client servi en {:.0} s ; le dernier : {}",
                            (v.t - since).as_secs_f64(),
                            d.unwrap_or(Answer::Failed(tf!(
                                "a grader thread panicked",
                                "un thread du correcteur a paniqué"
                            )))
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
                                answer: Answer::Failed(tf!(
                                    "a grader thread panicked",
                                    "un thread du correcteur a paniqué"
                                )),
                                at: Instant::now(),
                                unclosed: None,
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
                    let (dir, p, close) = (self.dir.clone(), self.patience, self.close_within);
                    let text = self.text("after", 0);
                    self.malformed_job = Some(std::thread::spawn(move || {
                        let r = malformed(&dir, p);
                        // Then a normal client must still be served (BUSY: the reservation
                        // our bad request made may not be released yet; unreachable: a server
                        // that crashed is being restarted; try again).
                        let start = Instant::now();
                        loop {
                            let a = client(&dir, &text, p, close, None).answer;
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
                    self.seen.crash = Some(Ok(tf!(
                        "{}; then {} concurrent clients were served by {} workers{}",
                        "{} ; puis {} clients simultanés ont été servis par {} ouvriers{}",
                        self.crash_note,
                        self.k,
                        self.k,
                        replacement
                            .map(|p| tf!(
                                " (the replacement is pid {p})",
                                " (le remplaçant a le pid {p})"
                            ))
                            .unwrap_or_default()
                    )));
                    self.phase = Phase::Terminate;
                    return vec![];
                }
                if v.t - since > self.patience {
                    self.seen.crash = Some(Err(tf!("{}; but afterwards {} concurrent clients were never served by {} distinct workers (last round: {}){}: a restarted worker must bind its address again", "{} ; mais ensuite {} clients simultanés n'ont jamais été servis par {} ouvriers distincts (dernier tour : {}){} : un ouvrier relancé doit lier (bind) de nouveau son adresse",
                        self.crash_note,
                        self.k,
                        self.k,
                        answers.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(crate::lang::sep()),
                        if replacement.is_none() { tf!("; no new server process was started", " ; aucun nouveau processus serveur n'a été lancé") } else { String::new() }
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
                h.join().map(|d| d.answer).unwrap_or(Answer::Failed(tf!(
                    "a grader thread panicked",
                    "un thread du correcteur a paniqué"
                )))
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
                Answer::Busy => Ok(tf!("with all {} workers busy, one more client was told BUSY", "les {} ouvriers occupés, un client de plus a reçu BUSY",
                    self.k
                )),
                Answer::Served { worker, .. } if first_free.is_some_and(|f| d.at < f) => Err(
                    tf!("with all {} workers busy, one more client was sent to {worker}, which was busy", "les {} ouvriers occupés, un client de plus a été envoyé à {worker}, qui était occupé", self.k),
                ),
                Answer::Served { worker, .. } => Err(tf!("with all {} workers busy, one more client was not told BUSY: it waited until a worker was free and was sent to {worker} — answer BUSY at once when no worker says YES", "les {} ouvriers occupés, un client de plus n'a pas reçu BUSY : il a attendu qu'un ouvrier se libère et a été envoyé à {worker} — répondez BUSY tout de suite quand aucun ouvrier ne dit YES",
                    self.k
                )),
                other => Err(tf!("with all {} workers busy, one more client got {other} instead of BUSY", "les {} ouvriers occupés, un client de plus : {other}, au lieu de BUSY",
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
                self.seen.busy = Some(Err(tf!("{} clients at once were sent to only {} distinct workers (pids {pids:?}): a worker was given two clients", "{} clients à la fois ont été envoyés à seulement {} ouvriers distincts (pid {pids:?}) : un ouvrier a reçu deux clients",
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
            self.seen.busy = Some(Err(tf!("could not make all {} workers busy: only {} clients were placed on a worker at once", "impossible d'occuper les {} ouvriers : seuls {} clients ont été placés à la fois sur un ouvrier",
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
                    self.seen.crash = Some(Err(tf!("the worker socket the client was sent to is served by pid {pid}, not a process started under the watchdog", "la socket d'ouvrier où le client a été envoyé est servie par le pid {pid}, pas par un processus lancé sous le chien de garde"
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
                self.seen.crash = Some(Err(tf!("no worker could be given a request to kill: the client got {}", "impossible de donner à un ouvrier une requête pendant laquelle le tuer : le client : {}",
                    d.map_or(tf!("nothing", "rien"), |d| d.answer.to_string())
                )));
                self.phase = Phase::Terminate;
            } else if v.t - since > self.phase_patience() {
                self.seen.crash = Some(Err(tf!(
                    "the client to crash a worker under never sent its request",
                    "le client sous lequel tuer un ouvrier n'a jamais envoyé sa requête"
                )));
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
                self.crash_note = tf!("worker pid {victim} SIGKILLed mid-request; its client got an error ({why})", "ouvrier de pid {victim} tué par SIGKILL en pleine requête ; son client a eu une erreur ({why})"
                );
                self.phase = Phase::Recover { since: at };
            }
            Some(Answer::Hung(why)) => {
                self.seen.crash = Some(Err(tf!("worker pid {victim} was SIGKILLed mid-request and its client hung ({why}): another process still holds the connection open", "l'ouvrier de pid {victim} a été tué par SIGKILL en pleine requête et son client est resté bloqué ({why}) : un autre processus tient encore la connexion ouverte"
                )));
                self.phase = Phase::Terminate;
            }
            other => {
                self.seen.crash = Some(Err(tf!("worker pid {victim} was SIGKILLed mid-request, yet its client got {}: the request was served by another process than the one listening", "l'ouvrier de pid {victim} a été tué par SIGKILL en pleine requête, et pourtant son client : {} ; la requête a été servie par un autre processus que celui qui écoutait",
                    other.map_or(tf!("nothing", "rien"), |a| a.to_string())
                )));
                self.phase = Phase::Terminate;
            }
        }
        vec![]
    }
}
