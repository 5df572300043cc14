//! Lab 6's contract, judged: the same implementation run as a sequence of commands on one DIR —
//! `start`, `start` again, `status`, `stop`, `status` (see labs/lab6-daemon/README.md) — and the
//! daemon inspected from outside in between: session, terminal, cwd, descriptors, pidfile lock.
//!
//! Without ptrace (a traced daemon would stop once the grader stops serving it): the grader is a
//! subreaper, so the daemon becomes its child when the launcher and middle process exit.

use crate::grade::checks::{self, Checks};
use crate::grade::daemonized::Facts;
use crate::grade::harness::Outcome;
use crate::grade::report::Check;
use crate::spec::Contract;
use nix::unistd::Pid;
use std::path::Path;
use std::time::Duration;

/// The steps, in order: the command's first argument.
pub const STEPS: [&str; 5] = ["start", "start", "status", "stop", "status"];

/// Judges the five steps' outcomes (`steps[i]` is None if not run: an earlier step timed out).
pub fn judge(
    steps: &[Option<Outcome>],
    daemon_facts: Option<&Facts>,
    stop_facts: &StopFacts,
    leftovers: &[(i32, String)],
    dir: &Path,
    c: &Contract,
    timeout_s: f64,
) -> Vec<Check> {
    let empty = Outcome::default();
    let first = steps.first().and_then(|s| s.as_ref()).unwrap_or(&empty);
    let mut k = Checks::new(c, first);
    let timed_out: Vec<usize> = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.as_ref().is_none_or(|o| o.timed_out))
        .map(|(i, _)| i)
        .collect();
    let code = |i: usize| {
        steps
            .get(i)
            .and_then(|s| s.as_ref())
            .and_then(|o| o.main_status)
            .map(|st| crate::process::shell_status(&st))
    };
    let stderr = |i: usize| {
        steps
            .get(i)
            .and_then(|s| s.as_ref())
            .map(|o| {
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_default()
    };

    // start
    let started = match (code(0), daemon_facts) {
        (Some(0), Some(f)) => {
            k.add(
                "start",
                true,
                tf!(
                    "start exited 0 and left daemon {} running",
                    "start a fini avec 0 et laissé le démon {} en marche",
                    f.pid
                ),
            );
            true
        }
        (Some(0), None) => {
            k.add(
                "start",
                false,
                tf!("start exited 0 but left no process running: the daemon must outlive its launcher", "start a fini avec 0 mais n'a laissé aucun processus en marche : le démon doit survivre à son lanceur"),
            );
            false
        }
        (Some(n), _) => {
            k.add(
                "start",
                false,
                tf!(
                    "start exited {n}: {}",
                    "start a fini avec le statut {n} : {}",
                    stderr(0)
                ),
            );
            false
        }
        (None, _) => {
            k.add("start", false, tf!("start did not exit within {timeout_s} s: the launcher must return once the daemon is ready", "start n'a pas fini en {timeout_s} s : le lanceur doit rendre la main une fois le démon prêt"));
            false
        }
    };

    // daemonized and pidfile
    match daemon_facts {
        Some(f) => {
            let mut bad = Vec::new();
            if f.session == f.launcher_session {
                bad.push(tf!("it is still in its launcher's session ({}): call setsid() in the first child, so no hang-up or Ctrl-C of that session reaches it", "il est encore dans la session de son lanceur ({}) : appelez setsid() dans le premier enfant, pour qu'aucun raccrochage ni Ctrl-C de cette session ne l'atteigne", f.session));
            } else if f.session_leader {
                bad.push(tf!(
                    "it is a session leader (fork a second time after setsid)",
                    "il est leader de session (faites un second fork après setsid)"
                ));
            }
            if f.has_tty {
                bad.push(tf!(
                    "it has a controlling terminal (setsid)",
                    "il a un terminal de contrôle (setsid)"
                ));
            }
            if f.cwd != "/" {
                bad.push(tf!(
                    "its cwd is {} (chdir(\"/\"))",
                    "son cwd est {} (chdir(\"/\"))",
                    f.cwd
                ));
            }
            for (fd, target) in &f.stdio {
                if target != "/dev/null" {
                    bad.push(tf!(
                        "fd {fd} is {target} (point 0, 1, 2 at /dev/null)",
                        "le fd {fd} est {target} (faites pointer 0, 1, 2 sur /dev/null)"
                    ));
                }
            }
            if !f.inherited.is_empty() {
                bad.push(tf!("it kept descriptors its launcher gave it: {} (close every inherited fd above 2 before the first fork's child goes on; the daemon's own, like its locked pidfile, stay)", "il a gardé des descripteurs que son lanceur lui a donnés : {} (fermez tout fd hérité au-dessus de 2 avant que l'enfant du premier fork continue ; ceux du démon lui-même, comme son fichier de pid verrouillé, restent)",
                    f.inherited.join(", ")
                ));
            }
            k.add(
                "daemonized",
                bad.is_empty(),
                if bad.is_empty() {
                    tf!(
                        "no session leader, no terminal, cwd /, stdio on /dev/null",
                        "pas leader de session, pas de terminal, cwd /, stdio sur /dev/null"
                    )
                } else {
                    tf!(
                        "the daemon (pid {}): {}",
                        "le démon (pid {}) : {}",
                        f.pid,
                        bad.join(crate::lang::sep())
                    )
                },
            );
            let pf = match (&f.pidfile_pid, f.pidfile_locked) {
                (Some(p), true) if *p == f.pid => (
                    true,
                    tf!(
                        "DIR/daemon.pid holds {p} and is locked",
                        "DIR/daemon.pid contient {p} et est verrouillé"
                    ),
                ),
                (Some(p), _) if *p != f.pid => (
                    false,
                    tf!(
                        "DIR/daemon.pid holds {p}, but the daemon is {}",
                        "DIR/daemon.pid contient {p}, mais le démon est {}",
                        f.pid
                    ),
                ),
                (Some(_), _) => (
                    false,
                    "DIR/daemon.pid is not locked: hold flock(LOCK_EX) on it while the daemon runs"
                        .into(),
                ),
                (None, _) => (
                    false,
                    tf!(
                        "no DIR/daemon.pid with the daemon's pid",
                        "pas de DIR/daemon.pid avec le pid du démon"
                    ),
                ),
            };
            k.add("pidfile", pf.0, pf.1);
        }
        None => {
            k.skip(
                "daemonized",
                tf!(
                    "skipped: no daemon was started",
                    "non jugé : aucun démon n'a été lancé"
                ),
            );
            k.skip(
                "pidfile",
                tf!(
                    "skipped: no daemon was started",
                    "non jugé : aucun démon n'a été lancé"
                ),
            );
        }
    }

    // second start
    if !started {
        k.skip(
            "second-start",
            tf!(
                "skipped: no daemon was started",
                "non jugé : aucun démon n'a été lancé"
            ),
        );
    } else {
        let extra = steps
            .get(1)
            .and_then(|s| s.as_ref())
            .map(|o| o.survivors.len())
            .unwrap_or(0);
        match code(1) {
            None => k.skip("second-start", checks::skip_timeout()),
            Some(0) => k.add(
                "second-start",
                false,
                tf!("a second start exited 0: it must be refused while the daemon runs", "un second start a fini avec 0 : il doit être refusé tant que le démon tourne"),
            ),
            Some(_) if extra > 0 => k.add(
                "second-start",
                false,
                tf!("the second start was refused but left {extra} new process(es) running", "le second start a été refusé mais a laissé {extra} nouveau(x) processus en marche"),
            ),
            Some(n) => k.add("second-start", true, tf!("refused with status {n}", "refusé avec le statut {n}")),
        }
    }

    // status and stop
    if !started {
        k.skip(
            "status",
            tf!(
                "skipped: no daemon was started",
                "non jugé : aucun démon n'a été lancé"
            ),
        );
        k.skip(
            "stop",
            tf!(
                "skipped: no daemon was started",
                "non jugé : aucun démon n'a été lancé"
            ),
        );
    } else {
        match (code(2), code(4)) {
            (Some(0), Some(3)) => k.add(
                "status",
                true,
                tf!(
                    "status exited 0 while running, 3 once stopped",
                    "status a fini avec 0 en marche, 3 une fois arrêté"
                ),
            ),
            (a, b) => k.add(
                "status",
                false,
                tf!(
                    "status exited {} while running and {} once stopped: LSB wants 0 and 3",
                    "status a fini avec {} en marche et {} une fois arrêté : LSB veut 0 et 3",
                    show(a),
                    show(b)
                ),
            ),
        }
        let mut bad = Vec::new();
        match code(3) {
            Some(0) => {}
            other => bad.push(tf!("stop exited {}", "stop a fini avec {}", show(other))),
        }
        if stop_facts.alive_after_stop {
            bad.push(
                tf!("the daemon was still running when stop returned: stop must wait for it to exit", "le démon tournait encore quand stop a rendu la main : stop doit attendre qu'il finisse"),
            );
        }
        match stop_facts.daemon_status {
            Some(0) => {}
            Some(n) => bad.push(tf!("the daemon ended with status {n} (on SIGTERM it should clean up and exit 0)", "le démon a fini avec le statut {n} (sur SIGTERM, il doit faire le ménage et finir avec 0)"
            )),
            None => bad.push(tf!("the daemon never exited", "le démon n'a jamais fini")),
        }
        if dir.join("daemon.pid").exists() {
            bad.push(tf!(
                "DIR/daemon.pid is still there: remove it on SIGTERM",
                "DIR/daemon.pid est toujours là : supprimez-le sur SIGTERM"
            ));
        }
        k.add(
            "stop",
            bad.is_empty(),
            if bad.is_empty() {
                tf!("stop exited 0 after the daemon exited 0 and removed its pidfile", "stop a fini avec 0 après que le démon a fini avec 0 et supprimé son fichier de pid")
            } else {
                bad.join(crate::lang::sep())
            },
        );
    }

    // The hygiene checks judge what the steps started: where none started a process, they
    // have no subject (an empty program scores nothing).
    let forked = steps
        .iter()
        .flatten()
        .any(|o| o.procs.keys().any(|p| *p != o.main_pid));
    if !forked && !started {
        for name in ["no-zombies", "no-leftover-processes", "timeout"] {
            k.skip(name, checks::skip_no_child());
        }
        return k.list;
    }

    // no-zombies over every step
    let mut z = Vec::new();
    for (i, o) in steps.iter().enumerate() {
        let Some(o) = o else { continue };
        for pid in &o.adopted_zombies {
            z.push(tf!("{} (step {}): process {pid} had exited but was never reaped by its parent", "{} (étape {}) : le processus {pid} avait fini mais n'a jamais été récupéré par son parent",
                STEPS[i],
                i + 1
            ));
        }
        for (pid, d, _) in &o.lingered {
            z.push(tf!(
                "{} (step {}): process {pid} stayed a zombie for {} ms",
                "{} (étape {}) : le processus {pid} est resté zombie {} ms",
                STEPS[i],
                i + 1,
                d.as_millis()
            ));
        }
    }
    k.add(
        "no-zombies",
        z.is_empty(),
        if z.is_empty() {
            tf!(
                "no process stayed a zombie",
                "aucun processus n'est resté zombie"
            )
        } else {
            z.join(crate::lang::sep())
        },
    );

    if leftovers.is_empty() {
        k.add(
            "no-leftover-processes",
            true,
            tf!(
                "nothing was left running after stop",
                "rien n'est resté en marche après stop"
            ),
        );
    } else {
        let list: Vec<String> = leftovers
            .iter()
            .map(|(p, w)| format!("pid {p} ({w})"))
            .collect();
        k.add(
            "no-leftover-processes",
            false,
            tf!(
                "still running after stop: {} (the grader killed it)",
                "encore en marche après stop : {} (le correcteur l'a tué)",
                list.join(", ")
            ),
        );
    }
    if timed_out.is_empty() {
        k.add(
            "timeout",
            true,
            tf!("every step finished in time", "chaque étape a fini à temps"),
        );
    } else {
        let names: Vec<String> = timed_out
            .iter()
            .map(|i| tf!("{} (step {})", "{} (étape {})", STEPS[*i], i + 1))
            .collect();
        k.add(
            "timeout",
            false,
            tf!(
                "did not finish within {timeout_s} s: {}",
                "pas fini en {timeout_s} s : {}",
                names.join(", ")
            ),
        );
    }
    k.list
}

fn show(c: Option<i32>) -> String {
    c.map(|n| n.to_string())
        .unwrap_or_else(|| tf!("nothing (timed out)", "rien (temps écoulé)"))
}

#[derive(Debug, Clone, Default)]
pub struct StopFacts {
    pub alive_after_stop: bool,
    pub daemon_status: Option<i32>,
}

/// After `stop` returned: was the daemon already gone? Then reap it (our child, as subreaper),
/// waiting a little as a safety net, and return its exit status.
pub fn after_stop(pid: i32) -> StopFacts {
    let alive = crate::inspect::info(pid).is_some_and(|i| !i.is_zombie());
    let mut facts = StopFacts {
        alive_after_stop: alive,
        daemon_status: None,
    };
    let Ok(fd) = crate::process::pidfd_open(Pid::from_raw(pid)) else {
        return facts;
    };
    let exited = crate::signals::poll_fds(
        &[std::os::fd::AsFd::as_fd(&fd)],
        Some(Duration::from_secs(5)),
    )
    .map(|r| r[0])
    .unwrap_or(false);
    if exited {
        if let Ok(st) = nix::sys::wait::waitpid(Pid::from_raw(pid), None) {
            facts.daemon_status = Some(crate::process::shell_status(&st));
        }
    }
    facts
}
