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

pub const SKIP_TIMEOUT: &str = "skipped: the run timed out";
/// A hygiene check passes only where there was something to keep clean: a program that did
/// nothing scores nothing (a fresh starter kit scores 0).
pub const SKIP_NO_CHILD: &str = "skipped: main never started a process, so none could be left";
pub const SKIP_NOTHING_MADE: &str = "skipped: nothing was ever created in DIR, so none could leak";
pub const SKIP_IDLE: &str =
    "skipped: main ended without doing anything the contract asks (no child, no file, no line)";

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
    pub fn role(&mut self, pids: &[i32], name: &str) {
        for p in pids {
            if !self.roles.iter().any(|(q, _)| q == p) {
                self.roles.push((*p, format!("the {name}")));
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
            detail.push_str(&format!(
                "; {} process or thread creation(s) were refused: the box allows {} at once (max_procs; threads count, as in pids.max)",
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

    pub fn skip(&mut self, name: &str, why: &str) {
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
            return self.skip("exit-status", SKIP_TIMEOUT);
        }
        match out.main_status {
            Some(nix::sys::wait::WaitStatus::Exited(_, 0)) => {
                self.add("exit-status", true, "main exited with status 0")
            }
            Some(st) => self.add(
                "exit-status",
                false,
                format!(
                    "main {}: it must exit 0 after a clean run{}",
                    crate::process::describe(&st),
                    stderr_tail(out)
                ),
            ),
            None => self.add("exit-status", false, "main's exit status was not seen"),
        }
    }

    /// No child left unreaped when main ended, none a zombie longer than the grace while main ran.
    pub fn no_zombies(&mut self, out: &Outcome, named: &[i32], role: &str) {
        if !self.forked {
            return self.skip("no-zombies", SKIP_NO_CHILD);
        }
        let mut z = Vec::new();
        for pid in &out.adopted_zombies {
            z.push(format!("{} had exited but was never reaped: it was still a zombie when main exited — main must wait (waitpid) for it", who(*pid, named, role)));
        }
        for (pid, d, samples) in &out.lingered {
            z.push(format!(
                "{} stayed a zombie for at least {} ms while main ran ({samples} samples; allowed {} ms): wait for a child as soon as it exits",
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
                "no process stayed a zombie".into()
            } else {
                z.join("; ")
            },
        );
    }

    /// The named processes (the secondary, the children) ended before main did.
    pub fn shutdown_order(&mut self, out: &Outcome, named: &[i32], role: &str) {
        if out.timed_out {
            return self.skip("shutdown-order", SKIP_TIMEOUT);
        }
        if named.is_empty() && !out.traced {
            return self.skip("shutdown-order", &format!("not judged: /proc polling saw no {role} (a process living less than a sampling period escapes it; ptrace would see it)"));
        }
        if named.is_empty() {
            return self.add(
                "shutdown-order",
                false,
                format!("no {role} process was seen: main must start it (fork)"),
            );
        }
        let orphaned: Vec<String> = named
            .iter()
            .filter(|p| out.alive_at_main_end.contains(p))
            .map(|p| p.to_string())
            .collect();
        if orphaned.is_empty() {
            self.add(
                "shutdown-order",
                true,
                format!("the {role} ended before main"),
            );
        } else {
            self.add("shutdown-order", false, format!("the {role} (pid {}) was still running when main exited: it was orphaned — main must wait for it before exiting", orphaned.join(", ")));
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
            return self.skip("no-leaked-files", SKIP_TIMEOUT);
        }
        if (required && !self.created) || self.idle {
            return self.skip("no-leaked-files", SKIP_NOTHING_MADE);
        }
        let left = dir_entries(dir);
        if left.is_empty() {
            self.add("no-leaked-files", true, "DIR is empty");
        } else {
            self.add(
                "no-leaked-files",
                false,
                format!("DIR still holds {}: {fix}", left.join(", ")),
            );
        }
    }

    /// Nothing of the tree still running once main had exited (and the linger time passed).
    pub fn no_leftover(&mut self, out: &Outcome) {
        if out.timed_out {
            return self.skip("no-leftover-processes", SKIP_TIMEOUT);
        }
        if !self.forked {
            return self.skip("no-leftover-processes", SKIP_NO_CHILD);
        }
        if out.killed.is_empty() {
            return self.add("no-leftover-processes", true, "nothing was left running");
        }
        let list: Vec<String> = out
            .killed
            .iter()
            .map(|(p, why)| format!("pid {p} {why}"))
            .collect();
        self.add(
            "no-leftover-processes",
            false,
            format!(
                "{}: every process must end before main does (the grader killed it)",
                list.join("; ")
            ),
        );
    }

    /// main exited within the budget; `stuck` says where it stopped otherwise.
    pub fn timeout(&mut self, out: &Outcome, stuck: String) {
        if !out.timed_out && self.idle {
            return self.skip("timeout", SKIP_IDLE);
        }
        if !out.timed_out {
            let t = out.main_end.map(|d| d.as_secs_f64()).unwrap_or(0.0);
            return self.add("timeout", true, format!("main exited after {t:.2} s"));
        }
        let mut d = stuck;
        d.push_str(&blocked_text(&out.blocked, &self.roles));
        if !out.killed.is_empty() {
            d.push_str(&format!(
                "; the grader killed {} process(es)",
                out.killed.len()
            ));
        }
        if out.refused_forks > 0 {
            d.push_str(&format!(
                "; {} fork(s) refused by the process bound",
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
            .map_or(format!("process {pid}"), |(_, r)| r.clone())
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
            Some(Way::Read) => " for reading",
            Some(Way::Write) => " for writing",
            Some(Way::Both) => " for reading and writing",
            None => "",
        };
        match (b.call.as_str(), &b.file) {
            ("openat" | "open", Some(f)) => format!("opening {f}{way} ({})", b.call),
            ("read" | "readv" | "recvfrom" | "recvmsg", Some(f)) => {
                format!("reading {f} ({})", b.call)
            }
            ("write" | "writev" | "sendto" | "sendmsg", Some(f)) => {
                format!("writing {f} ({}: full, nobody reads)", b.call)
            }
            ("wait4" | "waitid", _) => format!("waiting for a child ({})", b.call),
            (c, Some(f)) => format!("in {c} on {f}"),
            (c, None) if b.wchan.is_empty() || b.wchan == "0" => format!("in {c}"),
            (c, None) => format!("in {c} ({})", b.wchan),
        }
    };
    let parts: Vec<String> = blocked
        .iter()
        .map(|b| format!("{} is blocked {}", who(b.pid), doing(b)))
        .collect();
    let mut text = format!("; at the time limit {}", parts.join(", "));
    // The deadlocks students meet, named.
    let opens: Vec<_> = blocked.iter().filter(|b| is_open(b)).collect();
    let reads: Vec<_> = blocked.iter().filter(|b| is_pipe_read(b)).collect();
    let waits = blocked.iter().any(|b| b.call.starts_with("wait"));
    if opens.len() >= 2 && opens.iter().any(|b| file(b) != file(opens[0])) {
        text.push_str(": each waits for the other — an open of a FIFO returns only once the other end is opened, so open the FIFOs in the same order on both sides");
    } else if opens.len() == 1 && blocked.len() == 1 {
        text.push_str(&format!(
            ": no other process opens {} — a FIFO's open waits for the other end",
            file(opens[0])
        ));
    } else if reads.len() >= 2 {
        text.push_str(": each waits to read and nobody writes — a message written but still in a stdio buffer never arrives: flush after each write (or write unbuffered)");
    } else if waits && !opens.is_empty() {
        text.push_str(&format!(": {} waits for a child that is itself blocked opening {} — open your end before you wait", who(blocked.iter().find(|b| b.call.starts_with("wait")).map_or(0, |b| b.pid)), file(opens[0])));
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
            Some(got) => return Err(format!("line {}: expected {want:?}, got {got:?}", i + 1)),
            None => {
                let after = if i == 0 {
                    "nothing was printed".to_string()
                } else {
                    format!("the output stopped after {:?}", lines[i - 1])
                };
                return Err(format!("{after}; {want:?} never came"));
            }
        }
    }
    if let Some(extra) = lines.get(expected.len()) {
        return Err(format!(
            "line {}: unexpected extra line {extra:?}",
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
        return Err(format!(
            "stdout went over the {} bytes kept",
            out.stdout_bytes
        ));
    }
    Ok(format!("{} lines, as expected", expected.len()))
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
        return format!(
            "all {} lines came, but main did not exit within {timeout_s} s",
            expected.len()
        );
    }
    match done {
        0 => format!(
            "{:?} never came: nothing printed in {timeout_s} s",
            expected[0]
        ),
        k => format!(
            "{:?} never came: stuck after {:?} for {timeout_s} s",
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

fn who(pid: i32, named: &[i32], role: &str) -> String {
    if named.contains(&pid) {
        format!("the {role} (pid {pid})")
    } else {
        format!("process {pid}")
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
        Some(l) => format!(
            "; its stderr ends: {:?}",
            l.chars().take(200).collect::<String>()
        ),
        None => String::new(),
    }
}
