//! strace's `-ff -ttt -T -yy` output (one file per process or thread) read back into events, the
//! process tree rebuilt from clone/fork return values, and each line normalised for reading:
//! pids become role names, the private directory `DIR`, addresses and inode numbers masked,
//! times relative in ms.

use regex::Regex;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::LazyLock;

/// One line of one traced process (or thread).
#[derive(Debug, Clone)]
pub struct Event {
    /// Seconds since the epoch at syscall entry (strace -ttt).
    pub t: f64,
    /// Time spent in the syscall (strace -T), 0 when not shown.
    pub dur: f64,
    /// The process (threads folded into it).
    pub pid: i32,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Call {
        name: String,
        args: String,
        ret: String,
    },
    /// `--- SIGCHLD {...} ---`
    Signal { name: String, body: String },
    /// `+++ exited with N +++` (code) or `+++ killed by SIG +++` (signal).
    Exit {
        code: Option<i32>,
        signal: Option<String>,
    },
}

impl Event {
    pub fn call(&self) -> Option<(&str, &str, &str)> {
        match &self.kind {
            Kind::Call { name, args, ret } => Some((name, args, ret)),
            _ => None,
        }
    }

    /// The return value as a number, if it is one.
    pub fn ret_num(&self) -> Option<i64> {
        self.call()
            .and_then(|(_, _, r)| r.split_whitespace().next()?.parse().ok())
    }

    /// When the call returned.
    pub fn end(&self) -> f64 {
        self.t + self.dur
    }
}

/// A traced process and what the tree says of it.
#[derive(Debug, Clone, Default)]
pub struct Proc {
    pub pid: i32,
    pub parent: Option<i32>,
    pub role: String,
    /// First line (or the parent's clone) time.
    pub born: f64,
    pub exec: Option<String>,
    pub exit: Option<(f64, String)>,
    /// Reaped by (pid, time): a wait4/waitid that returned this pid.
    pub reaped: Option<(i32, f64)>,
}

pub struct Trace {
    pub events: Vec<Event>,
    pub procs: BTreeMap<i32, Proc>,
    /// Roots in order of their first line.
    pub roots: Vec<i32>,
    pub t0: f64,
}

static LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(\d+\.\d+) (.*?)(?: <(\d+\.\d+)>)?$").expect("regex"));
static CALL_END: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\)\s+= ").expect("regex"));
static EXIT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\+\+\+ (?:exited with (-?\d+)|killed by (SIG\w+))").expect("regex")
});

fn parse_line(pid: i32, line: &str) -> Option<Event> {
    let c = LINE.captures(line)?;
    let t: f64 = c[1].parse().ok()?;
    let dur = c
        .get(3)
        .and_then(|d| d.as_str().parse().ok())
        .unwrap_or(0.0);
    let rest = &c[2];
    let kind = if let Some(sig) = rest.strip_prefix("--- ") {
        let sig = sig.trim_end_matches(" ---");
        let (name, body) = sig.split_once(' ').unwrap_or((sig, ""));
        Kind::Signal {
            name: name.to_string(),
            body: body.to_string(),
        }
    } else if rest.starts_with("+++ ") {
        let e = EXIT.captures(rest)?;
        Kind::Exit {
            code: e.get(1).and_then(|m| m.as_str().parse().ok()),
            signal: e.get(2).map(|m| m.as_str().to_string()),
        }
    } else {
        let open = rest.find('(')?;
        let name = rest[..open].to_string();
        // strace pads short calls: `exit_group(0)                   = ?`.
        let (args, ret) = match CALL_END.find_iter(rest).last() {
            Some(m) if m.start() > open => {
                (&rest[open + 1..m.start()], rest[m.end()..].to_string())
            }
            // Cut by the process's death: `read(3, <unfinished ...>)`.
            _ => (rest[open + 1..].trim_end_matches(')'), "?".to_string()),
        };
        Kind::Call {
            name,
            args: args.to_string(),
            ret,
        }
    };
    Some(Event { t, dur, pid, kind })
}

impl Trace {
    /// Reads every `BASE.PID` file in `dir` (strace -ff -o DIR/BASE).
    pub fn read(dir: &Path, base: &str) -> std::io::Result<Trace> {
        let mut by_tid: BTreeMap<i32, Vec<Event>> = BTreeMap::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(tid) = name
                .strip_prefix(base)
                .and_then(|r| r.strip_prefix('.'))
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            let text = std::fs::read_to_string(e.path())?;
            by_tid.insert(
                tid,
                text.lines().filter_map(|l| parse_line(tid, l)).collect(),
            );
        }
        Ok(Trace::build(by_tid))
    }

    fn build(by_tid: BTreeMap<i32, Vec<Event>>) -> Trace {
        // Threads are not processes: a clone with CLONE_THREAD makes a thread of the caller.
        let mut thread_of: BTreeMap<i32, i32> = BTreeMap::new();
        let mut parent: BTreeMap<i32, (i32, f64)> = BTreeMap::new();
        let mut events: Vec<Event> = by_tid.values().flatten().cloned().collect();
        events.sort_by(|a, b| a.t.total_cmp(&b.t));
        for e in &events {
            if let Some((name, args, _)) = e.call() {
                if matches!(name, "clone" | "clone3" | "fork" | "vfork") {
                    if let Some(child) = e.ret_num().filter(|c| *c > 0) {
                        let child = child as i32;
                        if args.contains("CLONE_THREAD") {
                            let owner = *thread_of.get(&e.pid).unwrap_or(&e.pid);
                            thread_of.insert(child, owner);
                        } else {
                            let p = *thread_of.get(&e.pid).unwrap_or(&e.pid);
                            parent.insert(child, (p, e.t));
                        }
                    }
                }
            }
        }
        for e in events.iter_mut() {
            if let Some(owner) = thread_of.get(&e.pid) {
                e.pid = *owner;
            }
        }
        let t0 = events.first().map_or(0.0, |e| e.t);
        let mut procs: BTreeMap<i32, Proc> = BTreeMap::new();
        for e in &events {
            let p = procs.entry(e.pid).or_insert_with(|| Proc {
                pid: e.pid,
                parent: parent.get(&e.pid).map(|x| x.0),
                born: parent.get(&e.pid).map_or(e.t, |x| x.1),
                ..Default::default()
            });
            match &e.kind {
                Kind::Call { name, args, ret } if name == "execve" && ret.starts_with('0') => {
                    p.exec = args
                        .split('"')
                        .nth(1)
                        .map(|s| s.rsplit('/').next().unwrap_or(s).to_string());
                }
                Kind::Exit { code, signal } => {
                    let how = match (code, signal) {
                        (Some(c), _) => format!("exited {c}"),
                        (_, Some(s)) => format!("killed by {s}"),
                        _ => "ended".into(),
                    };
                    p.exit = Some((e.t, how));
                }
                _ => {}
            }
        }
        for e in &events {
            if let Some((name, _, _)) = e.call() {
                if matches!(name, "wait4" | "waitid") {
                    if let Some(child) = e.ret_num().filter(|c| *c > 0) {
                        if let Some(c) = procs.get_mut(&(child as i32)) {
                            c.reaped.get_or_insert((e.pid, e.end()));
                        }
                    }
                }
            }
        }
        let mut roots: Vec<i32> = procs
            .values()
            .filter(|p| p.parent.is_none_or(|pp| !procs.contains_key(&pp)))
            .map(|p| p.pid)
            .collect();
        roots.sort_by(|a, b| procs[a].born.total_cmp(&procs[b].born));
        Trace {
            events,
            procs,
            roots,
            t0,
        }
    }

    /// Children of `pid`, in birth order.
    pub fn children(&self, pid: i32) -> Vec<i32> {
        let mut c: Vec<&Proc> = self
            .procs
            .values()
            .filter(|p| p.parent == Some(pid))
            .collect();
        c.sort_by(|a, b| a.born.total_cmp(&b.born));
        c.into_iter().map(|p| p.pid).collect()
    }

    /// Names every process: roots from `roots` (then `root-N`), children of a role from
    /// `children(role)` by birth order. A child beyond that list that is born after a named
    /// sibling died is its replacement (`secondary-1'`); others are `PARENT.N`.
    pub fn name_roles(&mut self, roots: &[&str], children: &dyn Fn(&str) -> Vec<String>) {
        let mut todo: Vec<(i32, String)> = self
            .roots
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    *p,
                    roots
                        .get(i)
                        .map(|s| s.to_string())
                        .unwrap_or(format!("root-{}", i + 1)),
                )
            })
            .collect();
        while let Some((pid, role)) = todo.pop() {
            let names = children(&role);
            // (name, when it died, already replaced)
            let mut given: Vec<(String, Option<f64>, bool)> = Vec::new();
            for (i, kid) in self.children(pid).into_iter().enumerate() {
                let born = self.procs[&kid].born;
                let name = if let Some(n) = names.get(i) {
                    n.clone()
                } else if let Some(dead) = given
                    .iter_mut()
                    .find(|(_, died, replaced)| !replaced && died.is_some_and(|d| d <= born))
                {
                    dead.2 = true;
                    format!("{}'", dead.0)
                } else {
                    format!("{role}.{}", i + 1)
                };
                let died = self.procs[&kid].exit.as_ref().map(|e| e.0);
                given.push((name.clone(), died, false));
                todo.push((kid, name));
            }
            if let Some(p) = self.procs.get_mut(&pid) {
                p.role = role;
            }
        }
    }

    pub fn role(&self, pid: i32) -> &str {
        self.procs.get(&pid).map_or("?", |p| p.role.as_str())
    }
}

/// Rewrites a line for reading: paths, pids, addresses, inodes.
pub struct Normaliser {
    /// (literal, replacement), longest first.
    paths: Vec<(String, String)>,
    pids: BTreeMap<i64, String>,
    inodes: std::cell::RefCell<BTreeMap<String, usize>>,
}

static ADDR: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"0x[0-9a-f]{5,}").expect("regex"));
static SHM: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"ipclab((?:-[a-z]+)?)-\d+-\d+-[0-9a-f]{8}").expect("regex"));
static INODE: LazyLock<Regex> = LazyLock::new(|| {
    // A number alone in the brackets (or two, a pair's ends): an inode. A socket of an inet
    // family shows its addresses there instead (`TCP:[127.0.0.1:9876->...]`): left as it is.
    Regex::new(
        r"(pipe|UNIX|UNIX-STREAM|UNIX-DGRAM|socket|TCP|UDP|anon_inode):\[(\d+)(?:->(\d+))?\]",
    )
    .expect("regex")
});
static SYSTEM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"["<](/etc/|/lib|/usr/|/proc/|/sys/|/root/|/opt/|/dev/(?:null|urandom|tty))|\.pyc?[">]|\.so[".>]"#)
        .expect("regex")
});
static CLOCK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(tv_sec|tv_nsec)=\d{4,}").expect("regex"));
static NUM: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b\d+\b").expect("regex"));

impl Normaliser {
    pub fn new(trace: &Trace, paths: &[(String, String)]) -> Normaliser {
        let mut paths = paths.to_vec();
        paths.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Normaliser {
            paths,
            pids: trace
                .procs
                .values()
                .map(|p| (p.pid as i64, p.role.clone()))
                // The tracer itself signals the program in some scenarios.
                .chain([(std::process::id() as i64, "ipclab".to_string())])
                .collect(),
            inodes: Default::default(),
        }
    }

    fn inode(&self, n: &str) -> usize {
        let mut m = self.inodes.borrow_mut();
        let next = m.len() + 1;
        *m.entry(n.to_string()).or_insert(next)
    }

    pub fn text(&self, s: &str) -> String {
        let mut s = s.to_string();
        for (p, r) in &self.paths {
            s = s.replace(p.as_str(), r);
        }
        let s = SHM.replace_all(&s, "ipclab$1-UID-PID-XXXXXXXX");
        let s = ADDR.replace_all(&s, "ADDR");
        let s = CLOCK.replace_all(&s, "${1}=T");
        let s = INODE.replace_all(&s, |c: &regex::Captures<'_>| match c.get(3) {
            Some(peer) => format!(
                "{}:[#{}->#{}]",
                &c[1],
                self.inode(&c[2]),
                self.inode(peer.as_str())
            ),
            None => format!("{}:[#{}]", &c[1], self.inode(&c[2])),
        });
        self.pids_outside_strings(&s)
    }

    /// Pids become roles, except inside quoted strings (data, not pids).
    fn pids_outside_strings(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut chunk = String::new();
        let mut in_str = false;
        let mut escaped = false;
        for ch in s.chars() {
            if in_str {
                out.push(ch);
                if escaped {
                    escaped = false;
                } else if ch == '\\' {
                    escaped = true;
                } else if ch == '"' {
                    in_str = false;
                }
            } else if ch == '"' {
                out.push_str(&self.pids_in(&chunk));
                chunk.clear();
                out.push(ch);
                in_str = true;
            } else {
                chunk.push(ch);
            }
        }
        out.push_str(&self.pids_in(&chunk));
        out
    }

    fn pids_in(&self, s: &str) -> String {
        NUM.replace_all(s, |c: &regex::Captures<'_>| {
            let n: i64 = c[0].parse().unwrap_or(-1);
            match self.pids.get(&n) {
                Some(role) if n > 1 => format!("<{role}>"),
                _ => c[0].to_string(),
            }
        })
        .into_owned()
    }

    /// One event as a line: time in ms from the start, role, then the call as strace shows it.
    pub fn line(&self, trace: &Trace, e: &Event, width: usize) -> String {
        let ms = (e.t - trace.t0) * 1e3;
        let role = trace.role(e.pid);
        let body = self.body(e);
        format!("{ms:>10.3}  {role:<width$}  {body}")
    }

    /// A call on a system file (libraries, the loader's cache, /proc, an interpreter's modules):
    /// what every program does before its first line of its own.
    pub fn is_library_noise(&self, e: &Event) -> bool {
        let Some((_, args, ret)) = e.call() else {
            return false;
        };
        let text = self.text(&format!("{args} {ret}"));
        // Anonymous mappings are the allocator's, not shared memory.
        SYSTEM.is_match(&text)
            || (e.call().is_some_and(|c| c.0 == "mmap") && text.contains("MAP_ANONYMOUS"))
    }

    /// The call (or signal, or exit) as strace shows it, normalised.
    pub fn body(&self, e: &Event) -> String {
        match &e.kind {
            Kind::Call { name, args, ret } => {
                format!("{name}({}) = {}", self.text(args), self.text(ret))
            }
            Kind::Signal { name, body } => format!("--- {name} {} ---", self.text(body)),
            Kind::Exit { code: Some(c), .. } => format!("+++ exited with {c} +++"),
            Kind::Exit {
                signal: Some(s), ..
            } => format!("+++ killed by {s} +++"),
            Kind::Exit { .. } => "+++ ended +++".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(files: &[(i32, &str)]) -> Trace {
        Trace::build(
            files
                .iter()
                .map(|(pid, text)| {
                    (
                        *pid,
                        text.lines().filter_map(|l| parse_line(*pid, l)).collect(),
                    )
                })
                .collect(),
        )
    }

    /// The tree comes from clone's return value; a CLONE_THREAD clone is a thread, folded in.
    #[test]
    fn tree_roles_and_normalised_lines() {
        let mut t = trace(&[
            (100, "1.000000 clone(child_stack=NULL, flags=CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f12345678) = 101 <0.000100>\n\
                   1.100000 clone3({flags=CLONE_VM|CLONE_THREAD|CLONE_SIGHAND, exit_signal=0}, 88) = 102\n\
                   1.200000 write(4</tmp/x/ping>, \"ping 101\\n\", 9) = 9\n\
                   1.500000 wait4(101, [{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = 101 <0.2>\n\
                   1.800000 +++ exited with 0 +++"),
            (101, "1.010000 read(3</tmp/x/ping>, \"ping 101\\n\", 4096) = 9 <0.190000>\n\
                   1.600000 +++ exited with 0 +++"),
            (102, "1.150000 read(5<pipe:[777]>, \"\", 1) = 0\n1.160000 +++ exited with 0 +++"),
        ]);
        assert_eq!(t.roots, [100]);
        assert_eq!(t.children(100), [101]);
        t.name_roles(&["main"], &|r| {
            if r == "main" {
                vec!["secondary".into()]
            } else {
                vec![]
            }
        });
        assert_eq!(t.role(101), "secondary");
        assert_eq!(t.procs[&101].reaped.map(|r| r.0), Some(100));
        let n = Normaliser::new(&t, &[("/tmp/x".into(), "DIR".into())]);
        let lines: Vec<String> = t.events.iter().map(|e| n.line(&t, e, 9)).collect();
        assert!(
            lines[0].contains("child_tidptr=ADDR) = <secondary>"),
            "{}",
            lines[0]
        );
        // Data is not rewritten, even when it spells a pid.
        assert!(lines
            .iter()
            .any(|l| l.contains("write(4<DIR/ping>, \"ping 101\\n\", 9) = 9")));
        assert!(lines.iter().any(|l| l.contains("pipe:[#1]")));
        assert!(lines
            .last()
            .unwrap()
            .contains("main       +++ exited with 0 +++"));
    }

    /// A child born after a named sibling died is that sibling's replacement.
    #[test]
    fn replacements_are_primed() {
        let mut t = trace(&[
            (1, "1.0 clone(flags=SIGCHLD) = 2\n1.1 clone(flags=SIGCHLD) = 3\n1.5 clone(flags=SIGCHLD) = 4\n1.6 clone(flags=SIGCHLD) = 5"),
            (2, "1.01 getpid() = 2"),
            (3, "1.11 getpid() = 3\n1.2 +++ killed by SIGKILL +++"),
            (4, "1.51 getpid() = 4"),
            (5, "1.61 getpid() = 5"),
        ]);
        t.name_roles(&["watchdog"], &|r| {
            if r == "watchdog" {
                vec!["main".into(), "secondary-1".into()]
            } else {
                vec![]
            }
        });
        assert_eq!(t.role(3), "secondary-1");
        assert_eq!(t.role(4), "secondary-1'");
        assert_eq!(t.role(5), "watchdog.4");
    }
}
