//! Lab 3's contract, judged: a watchdog run as `IMPL --secondaries K --heartbeat-ms P --hang-ms T
//! --events EVENTS --dir DIR`, with faults injected while it runs (see labs/lab3-watchdog/README.md):
//! SIGKILL of a server, then a hang its parent cannot see through waitpid (PTRACE_INTERRUPT,
//! not SIGSTOP), then SIGTERM to the watchdog. Every restart the events file claims is checked
//! against the tree the grader saw.

use crate::grade::checks::{self, Checks, Role};
use crate::grade::harness::{Action, Outcome, Script, View};
use crate::grade::report::Check;
use crate::spec::Contract;
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Warmup,
    Crashed {
        victim: i32,
        at: Duration,
    },
    Settling {
        server: i32,
        since: Duration,
    },
    Frozen {
        victim: i32,
        at: Duration,
    },
    /// The hang's replacement is up: the watchdog has `log_within` to log its restart.
    Logging {
        server: i32,
        since: Duration,
    },
    Terminate,
    Done,
}

/// The injections and what the grader saw of them.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub crash: Option<(i32, Duration)>,
    pub crash_replacement: Option<(i32, Duration)>,
    pub hang: Option<(i32, Duration)>,
    pub hang_victim_exited: bool,
    pub hang_replacement: Option<(i32, Duration)>,
    pub term_at: Option<Duration>,
}

pub struct Injector {
    k: usize,
    hang: Duration,
    events: std::path::PathBuf,
    /// How long after a replacement's fork its restart may be logged (the contract's bound).
    log_within: Duration,
    phase: Phase,
    pub seen: Seen,
}

impl Injector {
    pub fn new(k: u64, hang_ms: u64, events: std::path::PathBuf, log_within_ms: u64) -> Injector {
        Injector {
            k: k as usize,
            hang: Duration::from_millis(hang_ms),
            events,
            log_within: Duration::from_millis(log_within_ms),
            phase: Phase::Warmup,
            seen: Seen::default(),
        }
    }

    /// The events file reports `pid` as started: what the grader waits for, within the bound,
    /// before it acts again (its timing must not decide the verdict).
    fn logged(&self, pid: i32) -> bool {
        let log = crate::evlog::Log::read(&self.events);
        log.has("start", pid as i64) || log.has("restart", pid as i64)
    }

    /// How long one phase may wait for the watchdog before the grader moves on.
    fn patience(&self) -> Duration {
        self.hang * 3 + Duration::from_secs(3)
    }
}

fn servers(v: &View<'_>) -> Vec<(i32, Duration)> {
    let mut s: Vec<(i32, Duration)> = v
        .procs
        .values()
        .filter(|p| p.parent == v.main && p.exited.is_none() && !p.gone)
        .map(|p| (p.pid, p.born))
        .collect();
    s.sort_by_key(|x| x.1);
    s
}

fn born_after(v: &View<'_>, t: Duration) -> Option<(i32, Duration)> {
    servers(v).into_iter().find(|(_, born)| *born > t)
}

impl Script for Injector {
    fn tick(&mut self, v: &View<'_>) -> Vec<Action> {
        if v.main_end.is_some() {
            self.phase = Phase::Done;
            return vec![];
        }
        match self.phase {
            Phase::Warmup => {
                let s = servers(v);
                // All servers up and beating for a while: the last born is a secondary.
                if s.len() > self.k && v.t > self.hang * 2 {
                    let (victim, _) = s[s.len() - 1];
                    self.seen.crash = Some((victim, v.t));
                    self.phase = Phase::Crashed { victim, at: v.t };
                    return vec![Action::Signal(victim, Signal::SIGKILL)];
                }
            }
            Phase::Crashed { at, .. } => {
                if let Some((pid, born)) = born_after(v, at) {
                    self.seen.crash_replacement = Some((pid, born - at));
                    self.phase = Phase::Settling {
                        server: pid,
                        since: v.t,
                    };
                } else if v.t - at > self.patience() {
                    self.phase = Phase::Terminate;
                }
            }
            Phase::Settling { server, since } => {
                let waited = v.t - since;
                let logged = waited > self.log_within || self.logged(server);
                if waited > self.hang * 2 && logged {
                    self.seen.hang = Some((server, v.t));
                    self.phase = Phase::Frozen {
                        victim: server,
                        at: v.t,
                    };
                    return vec![Action::Freeze(server)];
                }
            }
            Phase::Frozen { victim, at } => {
                let exited = v
                    .procs
                    .get(&victim)
                    .is_some_and(|p| p.exited.is_some() || p.gone);
                self.seen.hang_victim_exited |= exited;
                if let Some((pid, born)) = born_after(v, at).filter(|_| exited) {
                    self.seen.hang_replacement = Some((pid, born - at));
                    self.phase = Phase::Logging {
                        server: pid,
                        since: born,
                    };
                } else if v.t - at > self.patience() {
                    self.phase = Phase::Terminate;
                }
            }
            Phase::Logging { server, since } => {
                if v.t.saturating_sub(since) > self.log_within || self.logged(server) {
                    self.phase = Phase::Terminate;
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

pub fn judge(
    out: &Outcome,
    seen: &Seen,
    events: &Path,
    dir: &Path,
    c: &Contract,
    timeout_s: f64,
) -> Vec<Check> {
    let mut k = Checks::new(c, out);
    // The events file is an event log of version 0 (see crate::evlog).
    let log = crate::evlog::Log::read(events);
    let logged = |log: &crate::evlog::Log, ev: &str, pid: i32| log.has(ev, pid as i64);
    let ms = |d: Duration| d.as_millis();
    let claims = |old: i32, new: i32| -> Option<String> {
        if !logged(&log, "exit", old) {
            return Some(tf!(
                "the events file has no exit event for pid {old}",
                "le fichier d'événements n'a pas d'événement exit pour le pid {old}"
            ));
        }
        if !(logged(&log, "start", new) || logged(&log, "restart", new)) {
            return Some(tf!("the events file does not report the replacement pid {new} (a start or restart event for it, within {} ms of its fork)", "le fichier d'événements ne signale pas le pid {new} du remplaçant (un événement start ou restart pour lui, dans les {} ms qui suivent son fork)",
                c.bound_ms("restart_logged_ms", 2000)
            ));
        }
        None
    };

    match (seen.crash, seen.crash_replacement) {
        (None, _) => k.add("restart-after-crash", false, tf!("the watchdog never had all its servers running: nothing to kill{}", "le chien de garde n'a jamais eu tous ses serveurs en marche : rien à tuer{}", crate::grade::checks::stderr_tail(out))),
        (Some((victim, _)), None) => k.add("restart-after-crash", false, tf!("server {victim} was SIGKILLed and no new server was started: restart on SIGCHLD (waitpid tells you which one died)", "le serveur {victim} a reçu SIGKILL et aucun nouveau serveur n'a été lancé : relancez sur SIGCHLD (waitpid dit lequel est mort)")),
        (Some((victim, _)), Some((new, lat))) => match claims(victim, new) {
            Some(lie) => k.add("restart-after-crash", false, tf!("server {victim} was restarted as {new}, but {lie}", "le serveur {victim} a été relancé en {new}, mais {lie}")),
            None => k.add("restart-after-crash", true, tf!("server {victim} SIGKILLed, replaced by {new} after {} ms", "serveur {victim} tué par SIGKILL, remplacé par {new} au bout de {} ms", ms(lat))),
        },
    }
    match (seen.hang, seen.hang_victim_exited, seen.hang_replacement) {
        (None, _, _) => k.skip("restart-after-hang", tf!("skipped: the crash phase did not leave a server to freeze", "non jugé : la phase de plantage n'a pas laissé de serveur à geler")),
        (Some((victim, _)), false, _) => k.add("restart-after-hang", false, tf!("server {victim} was frozen (no more heartbeats, nothing for waitpid to see) and never killed: detect hangs by a missing heartbeat, then SIGTERM, SIGKILL", "le serveur {victim} a été gelé (plus de battements, rien que waitpid puisse voir) et jamais tué : détectez un blocage par un battement manquant, puis SIGTERM, SIGKILL")),
        (Some((victim, _)), true, None) => k.add("restart-after-hang", false, tf!("the frozen server {victim} was killed but not restarted", "le serveur gelé {victim} a été tué mais pas relancé")),
        (Some((victim, _)), true, Some((new, lat))) => match claims(victim, new) {
            Some(lie) => k.add("restart-after-hang", false, tf!("frozen server {victim} was replaced by {new}, but {lie}", "le serveur gelé {victim} a été remplacé par {new}, mais {lie}")),
            None => k.add("restart-after-hang", true, tf!("frozen server {victim} detected, killed and replaced by {new} after {} ms", "serveur gelé {victim} détecté, tué et remplacé par {new} au bout de {} ms", ms(lat))),
        },
    }
    if out.timed_out {
        k.skip("orderly-shutdown", checks::skip_timeout());
    } else {
        let code = out.main_status.map(|st| crate::process::shell_status(&st));
        let mut bad = Vec::new();
        if code != Some(0) {
            bad.push(tf!(
                "the watchdog exited {} after SIGTERM (want 0){}",
                "le chien de garde a fini avec le statut {} après SIGTERM (0 attendu){}",
                code.map(|c| c.to_string()).unwrap_or("?".into()),
                crate::grade::checks::stderr_tail(out)
            ));
        }
        if !out.alive_at_main_end.is_empty() {
            bad.push(tf!("servers (pid {}) were still running when it exited: stop and reap them first", "des serveurs (pid {}) tournaient encore quand il a fini : arrêtez-les et récupérez-les d'abord",
                out.alive_at_main_end
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if seen.term_at.is_none() {
            bad.push(tf!(
                "it exited before the grader sent SIGTERM",
                "il a fini avant que le correcteur envoie SIGTERM"
            ));
        }
        k.add(
            "orderly-shutdown",
            bad.is_empty(),
            if bad.is_empty() {
                tf!(
                    "every server stopped and reaped, then the watchdog exited 0",
                    "tous les serveurs arrêtés et récupérés, puis le chien de garde a fini avec 0"
                )
            } else {
                bad.join(crate::lang::sep())
            },
        );
    }
    let children: Vec<i32> = out
        .procs
        .values()
        .filter(|p| p.parent == out.main_pid)
        .map(|p| p.pid)
        .collect();
    k.role(&children, Role::SERVER);
    k.no_zombies(out, &children, Role::SERVER);
    k.no_leftover(out);
    k.no_leaked_files(
        out,
        dir,
        &tf!(
            "remove the FIFOs at shutdown",
            "supprimez les FIFO à l'arrêt"
        ),
        false,
    );
    k.timeout(
        out,
        tf!(
            "the watchdog did not exit within {timeout_s} s ({})",
            "le chien de garde n'a pas fini en {timeout_s} s ({})",
            match seen.term_at {
                Some(d) => tf!("SIGTERM sent at {} ms", "SIGTERM envoyé à {} ms", ms(d)),
                None => tf!(
                    "before the grader sent SIGTERM",
                    "avant que le correcteur envoie SIGTERM"
                ),
            }
        ),
    );
    k.list
}
