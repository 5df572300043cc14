//! Checks that mean the same in every lab's contract, with the same stable names: exit-status,
//! no-zombies, shutdown-order, no-leftover-processes, timeout; and the protocol line matcher.

use super::harness::Outcome;
use super::report::Check;
use crate::spec::Contract;
use std::collections::BTreeSet;

/// Collects checks with the contract's points.
pub struct Checks<'a> {
    pub list: Vec<Check>,
    c: &'a Contract,
    secs: f64,
    /// main started a process (its subject for no-zombies, no-leftover-processes).
    forked: bool,
    /// Something was created in DIR (the subject of no-leaked-files).
    created: bool,
    /// main did nothing the contract looks at: no child, nothing created, no line printed.
    idle: bool,
    /// Names for processes in the student's terms ("the secondary"), main's aside.
    roles: Vec<(i32, String)>,
    /// Forks and thread creations the process bound refused.
    refused: u64,
}

pub fn skip_timeout() -> String {
    tf!(
        "skipped: the run timed out",
        "non jugé : le temps imparti est écoulé"
    )
}

/// A hygiene check passes only where there was something to keep clean: a program that did
/// nothing scores nothing (a fresh starter kit scores 0).
pub fn skip_no_child() -> String {
    tf!(
        "skipped: main never started a process, so none could be left",
        "non jugé : main n'a lancé aucun processus, aucun ne pouvait donc rester"
    )
}

pub fn skip_nothing_made() -> String {
    tf!(
        "skipped: nothing was ever created in DIR, so none could leak",
        "non jugé : rien n'a été créé dans DIR, rien ne pouvait donc fuir"
    )
}

pub fn skip_idle() -> String {
    tf!(
        "skipped: main ended without doing anything the contract asks (no child, no file, no line)",
        "non jugé : main a fini sans rien faire de ce que demande le contrat (ni enfant, ni fichier, ni ligne)"
    )
}

/// A role in the student's terms, in both languages ("the secondary", "le secondaire"), with
/// what French agrees with it.
#[derive(Clone, Copy)]
pub struct Role {
    the_en: &'static str,
    the_fr: &'static str,
    /// "no secondary process" / "aucun processus secondaire".
    none_en: &'static str,
    none_fr: &'static str,
    plural: bool,
}

impl Role {
    pub const SECONDARY: Role = Role {
        the_en: "the secondary",
        the_fr: "le secondaire",
        none_en: "no secondary process",
        none_fr: "aucun processus secondaire",
        plural: false,
    };
    pub const SERVER: Role = Role {
        the_en: "the server",
        the_fr: "le serveur",
        none_en: "no server",
        none_fr: "aucun serveur",
        plural: false,
    };
    pub const CHILD: Role = Role {
        the_en: "the child",
        the_fr: "l'enfant",
        none_en: "no child",
        none_fr: "aucun enfant",
        plural: false,
    };
    pub const CHILDREN: Role = Role {
        the_en: "the children",
        the_fr: "les enfants",
        none_en: "no child",
        none_fr: "aucun enfant",
        plural: true,
    };
    pub const PROCESS: Role = Role {
        the_en: "the process",
        the_fr: "le processus",
        none_en: "no process",
        none_fr: "aucun processus",
        plural: false,
    };

    pub fn the(&self) -> &'static str {
        if crate::lang::fr() {
            self.the_fr
        } else {
            self.the_en
        }
    }

    fn none(&self) -> &'static str {
        if crate::lang::fr() {
            self.none_fr
        } else {
            self.none_en
        }
    }
}

impl<'a> Checks<'a> {
    pub fn new(c: &'a Contract, out: &Outcome) -> Checks<'a> {
        let forked = out.procs.keys().any(|p| *p != out.main_pid);
        let created = out
            .dir_events
            .iter()
            .any(|e| matches!(e, super::harness::DirEvent::Created { .. }));
        Checks {
            list: Vec::new(),
            c,
            secs: out.wall.as_secs_f64(),
            forked,
            created,
            idle: !forked && !created && out.stdout_lines.is_empty(),
            roles: vec![(out.main_pid, "main".into())],
            refused: out.refused_forks,
        }
    }

    /// Names `pids` by their role in the messages (`the secondary`).
    pub fn role(&mut self, pids: &[i32], role: Role) {
        for p in pids {
            if !self.roles.iter().any(|(q, _)| q == p) {
                self.roles.push((*p, role.the().into()));
            }
        }
    }

    /// main did nothing the contract looks at (see `idle`): a lab's own hygiene checks skip too.
    pub fn idle(&self) -> bool {
        self.idle
    }

    pub fn add(&mut self, name: &str, passed: bool, detail: impl Into<String>) {
        let max = self.c.points.get(name).copied().unwrap_or(1);
        let mut detail: String = detail.into();
        // A failure a refused fork or thread may explain says so: the transcript alone would
        // show only "can't start new thread" or EAGAIN.
        if !passed && self.refused > 0 && name != "timeout" {
            detail.push_str(&tf!(
                "; {} process or thread creation(s) were refused: the box allows {} at once (max_procs; threads count, as in pids.max)",
                " ; {} création(s) de processus ou de thread refusée(s) : la boîte en permet {} à la fois (max_procs ; les threads comptent, comme dans pids.max)",
                self.refused, self.c.max_procs
            ));
        }
        self.list.push(Check {
            name: name.into(),
            passed,
            skipped: false,
            detail,
            points: if passed { max } else { 0 },
            max_points: max,
            secs: self.secs,
        });
    }

    pub fn skip(&mut self, name: &str, why: impl Into<String>) {
        let max = self.c.points.get(name).copied().unwrap_or(1);
        self.list.push(Check {
            name: name.into(),
            passed: false,
            skipped: true,
            detail: why.into(),
            points: 0,
            max_points: max,
            secs: self.secs,
        });
    }

    /// main exits 0.
    pub fn exit_status(&mut self, out: &Outcome) {
        if out.timed_out {
            return self.skip("exit-status", skip_timeout());
        }
        match out.main_status {
            Some(nix::sys::wait::WaitStatus::Exited(_, 0)) => self.add(
                "exit-status",
                true,
                tf!("main exited with status 0", "main a fini avec le statut 0"),
            ),
            Some(st) => self.add(
                "exit-status",
                false,
                tf!(
                    "main {}: it must exit 0 after a clean run{}",
                    "main {} : il doit finir avec le statut 0 après une exécution sans faute{}",
                    crate::process::describe(&st),
                    stderr_tail(out)
                ),
            ),
            None => self.add(
                "exit-status",
                false,
                tf!(
                    "main's exit status was not seen",
                    "le statut de fin de main n'a pas été vu"
                ),
            ),
        }
    }

    /// No child left unreaped when main ended, none a zombie longer than the grace while main ran.
    pub fn no_zombies(&mut self, out: &Outcome, named: &[i32], role: Role) {
        if !self.forked {
            return self.skip("no-zombies", skip_no_child());
        }
        let mut z = Vec::new();
        for pid in &out.adopted_zombies {
            z.push(tf!(
                "{} had exited but was never reaped: it was still a zombie when main exited — main must wait (waitpid) for it",
                "{} avait fini mais n'a jamais été récupéré : c'était encore un zombie quand main a fini — main doit l'attendre (waitpid)",
                who(*pid, named, role)
            ));
        }
        for (pid, d, samples) in &out.lingered {
            z.push(tf!(
                "{} stayed a zombie for at least {} ms while main ran ({samples} samples; allowed {} ms): wait for a child as soon as it exits",
                "{} est resté zombie au moins {} ms pendant que main tournait ({samples} relevés ; permis : {} ms) : attendez un enfant dès qu'il finit",
                who(*pid, named, role),
                d.as_millis(),
                self.c.zombie_grace_ms
            ));
        }
        let ok = z.is_empty();
        self.add(
            "no-zombies",
            ok,
            if ok {
                tf!(
                    "no process stayed a zombie",
                    "aucun processus n'est resté zombie"
                )
            } else {
                z.join(crate::lang::sep())
            },
        );
    }

    /// The named processes (the secondary, the children) ended before main did.
    pub fn shutdown_order(&mut self, out: &Outcome, named: &[i32], role: Role) {
        if out.timed_out {
            return self.skip("shutdown-order", skip_timeout());
        }
        if named.is_empty() && !out.traced {
            return self.skip("shutdown-order", tf!(
                "not judged: /proc polling saw {} (a process living less than a sampling period escapes it; ptrace would see it)",
                "non jugé : le relevé de /proc n'a vu {} (un processus qui vit moins d'une période de relevé lui échappe ; ptrace le verrait)",
                role.none()
            ));
        }
        if named.is_empty() {
            return self.add(
                "shutdown-order",
                false,
                tf!(
                    "{} was seen: main must start it (fork)",
                    "{} n'a été vu : main doit le lancer (fork)",
                    role.none()
                ),
            );
        }
        let orphaned: Vec<String> = named
            .iter()
            .filter(|p| out.alive_at_main_end.contains(p))
            .map(|p| p.to_string())
            .collect();
        // French agrees the verb with the role; English needs no such help.
        let (ended, running, became) = match (crate::lang::fr(), role.plural) {
            (false, _) => ("ended", "was still running", "it was orphaned"),
            (true, false) => ("a fini", "tournait encore", "il est devenu orphelin"),
            (true, true) => (
                "ont fini",
                "tournaient encore",
                "ils sont devenus orphelins",
            ),
        };
        if orphaned.is_empty() {
            self.add(
                "shutdown-order",
                true,
                format!(
                    "{} {ended} {}",
                    role.the(),
                    tf!("before main", "avant main")
                ),
            );
        } else {
            self.add(
                "shutdown-order",
                false,
                tf!(
                    "{} (pid {}) {running} when main exited: {became} — main must wait for it before exiting",
                    "{} (pid {}) {running} quand main a fini : {became} — main doit l'attendre avant de finir",
                    role.the(),
                    orphaned.join(", ")
                ),
            );
        }
    }

    /// DIR empty after the run; `fix` says what the program should have removed. Where the
    /// contract requires files in DIR (`required`: lab 2's FIFOs), none ever created leaves the
    /// check without a subject; where DIR is optional, only a program that did nothing does.
    pub fn no_leaked_files(
        &mut self,
        out: &Outcome,
        dir: &std::path::Path,
        fix: &str,
        required: bool,
    ) {
        if out.timed_out {
            return self.skip("no-leaked-files", skip_timeout());
        }
        if (required && !self.created) || self.idle {
            return self.skip("no-leaked-files", skip_nothing_made());
        }
        let left = dir_entries(dir);
        if left.is_empty() {
            self.add("no-leaked-files", true, tf!("DIR is empty", "DIR est vide"));
        } else {
            self.add(
                "no-leaked-files",
                false,
                tf!(
                    "DIR still holds {}: {fix}",
                    "DIR contient encore {} : {fix}",
                    left.join(", ")
                ),
            );
        }
    }

    /// Nothing of the tree still running once main had exited (and the linger time passed).
    pub fn no_leftover(&mut self, out: &Outcome) {
        if out.timed_out {
            return self.skip("no-leftover-processes", skip_timeout());
        }
        if !self.forked {
            return self.skip("no-leftover-processes", skip_no_child());
        }
        if out.killed.is_empty() {
            return self.add(
                "no-leftover-processes",
                true,
                tf!("nothing was left running", "rien n'est resté en marche"),
            );
        }
        let list: Vec<String> = out
            .killed
            .iter()
            .map(|(p, why)| format!("pid {p} {why}"))
            .collect();
        self.add(
            "no-leftover-processes",
            false,
            tf!(
                "{}: every process must end before main does (the grader killed it)",
                "{} : tout processus doit finir avant main (le correcteur l'a tué)",
                list.join(crate::lang::sep())
            ),
        );
    }

    /// main exited within the budget; `stuck` says where it stopped otherwise.
    pub fn timeout(&mut self, out: &Outcome, stuck: String) {
        if !out.timed_out && self.idle {
            return self.skip("timeout", skip_idle());
        }
        if !out.timed_out {
            let t = out.main_end.map(|d| d.as_secs_f64()).unwrap_or(0.0);
            return self.add(
                "timeout",
                true,
                tf!(
                    "main exited after {t:.2} s",
                    "main a fini au bout de {t:.2} s"
                ),
            );
        }
        let mut d = stuck;
        d.push_str(&blocked_text(&out.blocked, &self.roles));
        if !out.killed.is_empty() {
            d.push_str(&tf!(
                "; the grader killed {} process(es)",
                " ; le correcteur a tué {} processus",
                out.killed.len()
            ));
        }
        if out.refused_forks > 0 {
            d.push_str(&tf!(
                "; {} fork(s) refused by the process bound",
                " ; {} fork(s) refusé(s) par la limite de processus",
                out.refused_forks
            ));
        }
        self.add("timeout", false, d);
    }
}

/// Where each live process was blocked at the time limit, and the known deadlock it makes, in
/// the student's terms: "; main is blocked opening DIR/ping for writing (openat), ...".
pub fn blocked_text(blocked: &[crate::inspect::Blocked], roles: &[(i32, String)]) -> String {
    use crate::inspect::Way;
    if blocked.is_empty() {
        return String::new();
    }
    let who = |pid: i32| {
        roles
            .iter()
            .find(|(p, _)| *p == pid)
            .map_or(tf!("process {pid}", "le processus {pid}"), |(_, r)| {
                r.clone()
            })
    };
    let file = |b: &crate::inspect::Blocked| b.file.clone().unwrap_or_default();
    let is_open = |b: &crate::inspect::Blocked| b.call == "openat" || b.call == "open";
    let is_pipe_read = |b: &crate::inspect::Blocked| {
        b.way == Some(Way::Read)
            && (b.call == "read" || b.call == "readv")
            && (b.wchan.contains("pipe")
                || file(b).starts_with("pipe:")
                || file(b).starts_with("DIR/"))
    };
    let doing = |b: &crate::inspect::Blocked| {
        let way = match b.way {
            Some(Way::Read) => tf!(" for reading", " en lecture"),
            Some(Way::Write) => tf!(" for writing", " en écriture"),
            Some(Way::Both) => tf!(" for reading and writing", " en lecture et écriture"),
            None => String::new(),
        };
        match (b.call.as_str(), &b.file) {
            ("openat" | "open", Some(f)) => {
                tf!(
                    "opening {f}{way} ({})",
                    "à l'ouverture de {f}{way} ({})",
                    b.call
                )
            }
            ("read" | "readv" | "recvfrom" | "recvmsg", Some(f)) => {
                tf!("reading {f} ({})", "en lecture de {f} ({})", b.call)
            }
            ("write" | "writev" | "sendto" | "sendmsg", Some(f)) => tf!(
                "writing {f} ({}: full, nobody reads)",
                "en écriture sur {f} ({} : plein, personne ne lit)",
                b.call
            ),
            ("wait4" | "waitid", _) => {
                tf!(
                    "waiting for a child ({})",
                    "en attente d'un enfant ({})",
                    b.call
                )
            }
            (c, Some(f)) => tf!("in {c} on {f}", "dans {c} sur {f}"),
            (c, None) if b.wchan.is_empty() || b.wchan == "0" => tf!("in {c}", "dans {c}"),
            (c, None) => tf!("in {c} ({})", "dans {c} ({})", b.wchan),
        }
    };
    let parts: Vec<String> = blocked
        .iter()
        .map(|b| tf!("{} is blocked {}", "{} est bloqué {}", who(b.pid), doing(b)))
        .collect();
    let mut text = tf!(
        "; at the time limit {}",
        " ; à la limite de temps, {}",
        parts.join(", ")
    );
    // The deadlocks students meet, named.
    let opens: Vec<_> = blocked.iter().filter(|b| is_open(b)).collect();
    let reads: Vec<_> = blocked.iter().filter(|b| is_pipe_read(b)).collect();
    let waits = blocked.iter().any(|b| b.call.starts_with("wait"));
    if opens.len() >= 2 && opens.iter().any(|b| file(b) != file(opens[0])) {
        text.push_str(&tf!(
            ": each waits for the other — an open of a FIFO returns only once the other end is opened, so open the FIFOs in the same order on both sides",
            " : chacun attend l'autre — l'ouverture d'un FIFO ne rend la main qu'une fois l'autre bout ouvert : ouvrez les FIFO dans le même ordre des deux côtés"
        ));
    } else if opens.len() == 1 && blocked.len() == 1 {
        text.push_str(&tf!(
            ": no other process opens {} — a FIFO's open waits for the other end",
            " : aucun autre processus n'ouvre {} — l'ouverture d'un FIFO attend l'autre bout",
            file(opens[0])
        ));
    } else if reads.len() >= 2 {
        text.push_str(&tf!(
            ": each waits to read and nobody writes — a message written but still in a stdio buffer never arrives: flush after each write (or write unbuffered)",
            " : chacun attend de lire et personne n'écrit — un message écrit mais resté dans un tampon stdio n'arrive jamais : videz le tampon (flush) après chaque écriture, ou écrivez sans tampon"
        ));
    } else if waits && !opens.is_empty() {
        text.push_str(&tf!(
            ": {} waits for a child that is itself blocked opening {} — open your end before you wait",
            " : {} attend un enfant lui-même bloqué à l'ouverture de {} — ouvrez votre bout avant d'attendre",
            who(blocked.iter().find(|b| b.call.starts_with("wait")).map_or(0, |b| b.pid)),
            file(opens[0])
        ));
    }
    text
}

/// Compares stdout with the expected lines (`matches(i, line)` for line i); Ok or the first
/// difference in the student's terms.
pub fn protocol(
    out: &Outcome,
    expected: &[String],
    matches: impl Fn(usize, &str) -> bool,
) -> Result<String, String> {
    let lines: Vec<&str> = out.stdout_lines.iter().map(|(_, l)| l.as_str()).collect();
    for (i, want) in expected.iter().enumerate() {
        match lines.get(i) {
            Some(got) if matches(i, got) => {}
            Some(got) => {
                return Err(tf!(
                    "line {}: expected {want:?}, got {got:?}",
                    "ligne {} : {want:?} attendue, {got:?} reçue",
                    i + 1
                ))
            }
            None => {
                let after = if i == 0 {
                    tf!("nothing was printed", "rien n'a été écrit")
                } else {
                    tf!(
                        "the output stopped after {:?}",
                        "la sortie s'est arrêtée après {:?}",
                        lines[i - 1]
                    )
                };
                return Err(tf!(
                    "{after}; {want:?} never came",
                    "{after} ; {want:?} n'est jamais venue"
                ));
            }
        }
    }
    if let Some(extra) = lines.get(expected.len()) {
        return Err(tf!(
            "line {}: unexpected extra line {extra:?}",
            "ligne {} : ligne en trop {extra:?}",
            expected.len() + 1
        ));
    }
    if out.stdout_bytes
        > out
            .stdout_lines
            .iter()
            .map(|(_, l)| l.len() + 1)
            .sum::<usize>()
    {
        return Err(tf!(
            "stdout went over the {} bytes kept",
            "stdout a dépassé les {} octets conservés",
            out.stdout_bytes
        ));
    }
    Ok(tf!(
        "{} lines, as expected",
        "{} lignes, comme attendu",
        expected.len()
    ))
}

/// Where a run that timed out stopped, from the expected lines it printed.
pub fn stuck(
    out: &Outcome,
    expected: &[String],
    timeout_s: f64,
    matches: impl Fn(usize, &str) -> bool,
) -> String {
    let done = out
        .stdout_lines
        .iter()
        .enumerate()
        .take_while(|(i, (_, l))| *i < expected.len() && matches(*i, l))
        .count();
    if done == expected.len() {
        return tf!(
            "all {} lines came, but main did not exit within {timeout_s} s",
            "les {} lignes sont venues, mais main n'a pas fini en {timeout_s} s",
            expected.len()
        );
    }
    match done {
        0 => tf!(
            "{:?} never came: nothing printed in {timeout_s} s",
            "{:?} n'est jamais venue : rien d'écrit en {timeout_s} s",
            expected[0]
        ),
        k => tf!(
            "{:?} never came: stuck after {:?} for {timeout_s} s",
            "{:?} n'est jamais venue : bloqué après {:?} pendant {timeout_s} s",
            expected[k],
            expected[k - 1]
        ),
    }
}

/// Processes whose chain of parents leads to main.
pub fn descendants_of(out: &Outcome, main: i32) -> BTreeSet<i32> {
    let mut set = BTreeSet::new();
    let mut changed = true;
    while changed {
        changed = false;
        for p in out.procs.values() {
            if p.pid != main
                && !set.contains(&p.pid)
                && (p.parent == main || set.contains(&p.parent))
            {
                set.insert(p.pid);
                changed = true;
            }
        }
    }
    set
}

/// The descendant(s) of main seen holding watched files; failing that evidence, main's children.
pub fn holders_or_children(out: &Outcome, main: i32) -> Vec<i32> {
    let desc = descendants_of(out, main);
    let holders: Vec<i32> = desc
        .iter()
        .copied()
        .filter(|p| out.procs.get(p).is_some_and(|x| !x.held.is_empty()))
        .collect();
    if !holders.is_empty() {
        return holders;
    }
    children_of(out, main)
}

pub fn children_of(out: &Outcome, main: i32) -> Vec<i32> {
    out.procs
        .values()
        .filter(|p| p.parent == main && p.pid != main)
        .map(|p| p.pid)
        .collect()
}

fn who(pid: i32, named: &[i32], role: Role) -> String {
    if named.contains(&pid) {
        format!("{} (pid {pid})", role.the())
    } else {
        tf!("process {pid}", "le processus {pid}")
    }
}

/// Names in a directory, sorted (what a run left in DIR).
pub fn dir_entries(dir: &std::path::Path) -> Vec<String> {
    crate::sandbox::BoxDir::entries(dir)
}

/// What the processes last said on stderr, quoted: the first line naming a starter kit's
/// `TODO(...)`, else the last line; or nothing.
pub fn stderr_tail(out: &Outcome) -> String {
    let text = String::from_utf8_lossy(&out.stderr);
    let todo = text.lines().map(str::trim).find(|l| l.contains("TODO(lab"));
    match todo.or_else(|| text.lines().rev().map(str::trim).find(|l| !l.is_empty())) {
        Some(l) => tf!(
            "; its stderr ends: {:?}",
            " ; son stderr finit par : {:?}",
            l.chars().take(200).collect::<String>()
        ),
        None => String::new(),
    }
}

/// A regular file of a box, opened as the grader (root) may: never through a symbolic link
/// the program planted (O_NOFOLLOW), never blocking on a FIFO put in its place (O_NONBLOCK).
pub fn open_box_file(path: &std::path::Path) -> Option<std::fs::File> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let t = f.metadata().ok()?.file_type();
    (t.is_file() && !t.is_fifo()).then_some(f)
}

/// The first `cap` bytes of a box's regular file (see `open_box_file`), as text.
pub fn read_box_file(path: &std::path::Path, cap: u64) -> Option<String> {
    use std::io::Read;
    let mut s = Vec::new();
    open_box_file(path)?.take(cap).read_to_end(&mut s).ok()?;
    Some(String::from_utf8_lossy(&s).into_owned())
}
