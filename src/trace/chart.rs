//! A message sequence chart from a trace: one lifeline per process, an arrow per message, the
//! process events (fork, exec, exit, reap, signals) marked, and each zombie interval — from a
//! child's exit to its reaping, or to its parent's exit when nobody reaped it — shaded.
//!
//! Messages are matched by byte offset: FIFOs, pipes and stream sockets are byte streams, so a
//! read may hold part of a write, or several. Every byte written into a channel (a FIFO's path,
//! a pipe's inode, a socket pair's inodes) is numbered; a message is a newline-terminated run
//! of those bytes (or one whole write, where the channel carries no newline at all); it is sent
//! by the write holding its first byte and received by the read holding its last.

use super::parse::{Kind, Normaliser, Trace};
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Debug, Clone)]
pub struct Message {
    pub from: i32,
    pub to: i32,
    pub sent: f64,
    pub received: f64,
    pub label: String,
}

#[derive(Debug, Clone)]
pub enum Mark {
    Fork {
        parent: i32,
        child: i32,
        t: f64,
    },
    Exec {
        pid: i32,
        t: f64,
        program: String,
    },
    Exit {
        pid: i32,
        t: f64,
        how: String,
    },
    Reap {
        parent: i32,
        child: i32,
        t: f64,
    },
    Signal {
        pid: i32,
        t: f64,
        name: String,
    },
    Kill {
        from: i32,
        to: i32,
        t: f64,
        name: String,
    },
    /// A heartbeat from the event log (shared memory: strace cannot see it).
    Beat {
        pid: i32,
        t: f64,
    },
}

#[derive(Debug, Clone)]
pub struct Zombie {
    pub pid: i32,
    pub from: f64,
    pub to: f64,
    /// "reaped by main", "parent exited, adopted by the tracer", "never reaped".
    pub how: String,
}

pub struct Chart<'a> {
    trace: &'a Trace,
    pub messages: Vec<Message>,
    pub marks: Vec<Mark>,
    pub zombies: Vec<Zombie>,
}

/// Where the first argument's `-yy` decoration `<...>` opens and closes.
fn decoration(args: &str) -> Option<(usize, usize)> {
    let open = args.find('<')?;
    // The first '>' that is not the arrow of a socket's `A->B`.
    let close = args[open..]
        .char_indices()
        .find(|(i, c)| *c == '>' && !args[open..][..*i].ends_with('-'))?
        .0
        + open;
    Some((open, close))
}

/// The channel a call's first argument names (strace -yy), and whether this end reads it.
/// `peers` completes a socket shown without its peer (strace could not tell it at that moment).
fn channel(args: &str, reading: bool, peers: &BTreeMap<String, String>) -> Option<String> {
    let (open, close) = decoration(args)?;
    let what = &args[open + 1..close];
    if let Some(rest) = what
        .strip_prefix("UNIX-STREAM:[")
        .or_else(|| what.strip_prefix("UNIX:["))
    {
        // `A->B`: this end is A, its peer B. Bytes written on A are read on B.
        let ids = rest.split([']', ',']).next()?;
        let (a, b) = match ids.split_once("->") {
            Some(ab) => ab,
            None => (ids, peers.get(ids)?.as_str()),
        };
        return Some(if reading {
            format!("sock:{b}->{a}")
        } else {
            format!("sock:{a}->{b}")
        });
    }
    Some(what.to_string())
}

/// strace's quoted string back to bytes (\n, \t, \\, \", \xNN, octal \NNN).
pub fn unquote(args: &str) -> Option<Vec<u8>> {
    let start = args.find('"')? + 1;
    let b = args.as_bytes();
    let mut out = Vec::new();
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'"' => return Some(out),
            b'\\' if i + 1 < b.len() => {
                i += 1;
                match b[i] {
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'r' => out.push(b'\r'),
                    b'v' => out.push(0x0b),
                    b'f' => out.push(0x0c),
                    b'x' if i + 2 < b.len() => {
                        let h = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
                        out.push(u8::from_str_radix(h, 16).ok()?);
                        i += 2;
                    }
                    c @ b'0'..=b'7' => {
                        let mut v = (c - b'0') as u32;
                        let mut n = 1;
                        while n < 3 && i + 1 < b.len() && (b'0'..=b'7').contains(&b[i + 1]) {
                            i += 1;
                            v = v * 8 + (b[i] - b'0') as u32;
                            n += 1;
                        }
                        out.push(v as u8);
                    }
                    c => out.push(c),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    Some(out)
}

static SOCK_PAIR: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"UNIX(?:-STREAM)?:\[(\d+)->(\d+)").expect("regex")
});

fn label(bytes: &[u8]) -> String {
    // A frame with a 4-byte big-endian length prefix (lab 4): the label is its payload.
    let bytes = match bytes.get(..4) {
        Some(h) if u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize == bytes.len() - 4 => {
            &bytes[4..]
        }
        _ => bytes,
    };
    let text: String = bytes
        .iter()
        .filter(|b| b.is_ascii_graphic() || **b == b' ')
        .map(|b| *b as char)
        .collect();
    text.trim().to_string()
}

fn short(text: String) -> String {
    if text.chars().count() > 28 {
        format!("{}…", text.chars().take(27).collect::<String>())
    } else {
        text
    }
}

struct Piece {
    pid: i32,
    t: f64,
    bytes: Vec<u8>,
}

impl<'a> Chart<'a> {
    pub fn new(trace: &'a Trace, norm: &Normaliser) -> Chart<'a> {
        let mut writes: BTreeMap<String, Vec<Piece>> = BTreeMap::new();
        let mut reads: BTreeMap<String, Vec<Piece>> = BTreeMap::new();
        let mut marks = Vec::new();
        let mut peers: BTreeMap<String, String> = BTreeMap::new();
        for e in &trace.events {
            if let Some((_, args, ret)) = e.call() {
                for c in SOCK_PAIR
                    .captures_iter(args)
                    .chain(SOCK_PAIR.captures_iter(ret))
                {
                    peers.insert(c[1].to_string(), c[2].to_string());
                }
            }
        }
        for e in &trace.events {
            match &e.kind {
                Kind::Call { name, args, ret } => {
                    let n = e.ret_num().unwrap_or(-1);
                    let is_write = matches!(name.as_str(), "write" | "send" | "sendto");
                    let is_read = matches!(name.as_str(), "read" | "recv" | "recvfrom");
                    if (is_write || is_read) && n > 0 {
                        // The data follows the fd's decoration (which may hold a quoted path).
                        let data = decoration(args).map_or(args.as_str(), |(_, c)| &args[c + 1..]);
                        let (Some(ch), Some(mut bytes)) =
                            (channel(args, is_read, &peers), unquote(data))
                        else {
                            continue;
                        };
                        bytes.truncate(n as usize);
                        let p = Piece {
                            pid: e.pid,
                            t: e.end(),
                            bytes,
                        };
                        if is_write { &mut writes } else { &mut reads }
                            .entry(ch)
                            .or_default()
                            .push(p);
                    }
                    if name == "kill" && ret.starts_with('0') {
                        let mut it = args.split(", ");
                        let to = it.next().and_then(|p| p.trim().parse::<i32>().ok());
                        let sig = it.next().unwrap_or("").trim().to_string();
                        if let Some(to) = to.filter(|p| trace.procs.contains_key(p)) {
                            marks.push(Mark::Kill {
                                from: e.pid,
                                to,
                                t: e.t,
                                name: sig,
                            });
                        }
                    }
                }
                Kind::Signal { name, body } => marks.push(Mark::Signal {
                    pid: e.pid,
                    t: e.t,
                    name: match sender(body) {
                        Some(p) if p == std::process::id() as i32 => format!("{name} from ipclab"),
                        Some(p) if trace.procs.contains_key(&p) => {
                            format!("{name} from {}", trace.role(p))
                        }
                        // The kernel's own signals (SIGCHLD, SIGPIPE) carry the pid they are about.
                        _ => name.clone(),
                    },
                }),
                Kind::Exit { .. } => {}
            }
        }
        let mut messages = Vec::new();
        for (ch, mut ws) in writes {
            let Some(mut rs) = reads.remove(&ch) else {
                continue;
            };
            ws.sort_by(|a, b| a.t.total_cmp(&b.t));
            rs.sort_by(|a, b| a.t.total_cmp(&b.t));
            // Byte i of the stream: who wrote it and when; who read it and when.
            let mut w_at: Vec<(usize, i32, f64)> = Vec::new();
            let mut stream = Vec::new();
            for w in &ws {
                w_at.push((stream.len(), w.pid, w.t));
                stream.extend_from_slice(&w.bytes);
            }
            let mut r_end: Vec<(usize, i32, f64)> = Vec::new();
            let mut off = 0;
            for r in &rs {
                off += r.bytes.len();
                r_end.push((off, r.pid, r.t));
            }
            // A line protocol (text with newlines): one message per line, however the writes
            // and reads cut it. Anything else (frames, binary): one message per write.
            let newlines = stream.contains(&b'\n')
                && stream
                    .iter()
                    .all(|b| b.is_ascii_graphic() || matches!(b, b' ' | b'\n' | b'\t' | b'\r'));
            let mut bounds = Vec::new();
            if newlines {
                let mut a = 0;
                for (i, b) in stream.iter().enumerate() {
                    if *b == b'\n' {
                        bounds.push((a, i + 1));
                        a = i + 1;
                    }
                }
            } else {
                for (i, (start, _, _)) in w_at.iter().enumerate() {
                    let end = w_at.get(i + 1).map_or(stream.len(), |n| n.0);
                    bounds.push((*start, end));
                }
            }
            for (a, b) in bounds {
                let Some(&(_, from, sent)) = w_at.iter().rev().find(|w| w.0 <= a) else {
                    continue;
                };
                // The read that delivered the last byte; unread bytes make no arrow.
                let Some(&(_, to, received)) = r_end.iter().find(|r| r.0 >= b) else {
                    continue;
                };
                if from == to {
                    // A process writing to itself: a self-pipe waking its own poll loop.
                    continue;
                }
                messages.push(Message {
                    from,
                    to,
                    sent,
                    received,
                    label: match short(norm.text(&label(&stream[a..b]))) {
                        l if l.is_empty() => format!("{} B", b - a),
                        l => l,
                    },
                });
            }
        }
        messages.sort_by(|a, b| a.sent.total_cmp(&b.sent));

        let mut zombies = Vec::new();
        let end = trace.events.last().map_or(0.0, |e| e.t);
        for p in trace.procs.values() {
            if let (Some(parent), true) =
                (p.parent, trace.procs.contains_key(&p.parent.unwrap_or(0)))
            {
                marks.push(Mark::Fork {
                    parent,
                    child: p.pid,
                    t: p.born,
                });
            }
            if let Some(prog) = &p.exec {
                let t = trace
                    .events
                    .iter()
                    .find(|e| e.pid == p.pid && e.call().is_some_and(|c| c.0 == "execve"))
                    .map_or(p.born, |e| e.t);
                marks.push(Mark::Exec {
                    pid: p.pid,
                    t,
                    program: prog.clone(),
                });
            }
            let Some((died, how)) = &p.exit else { continue };
            marks.push(Mark::Exit {
                pid: p.pid,
                t: *died,
                how: how.clone(),
            });
            let parent_exit = p
                .parent
                .and_then(|pp| trace.procs.get(&pp))
                .and_then(|pp| pp.exit.as_ref().map(|e| e.0));
            let z = match (p.reaped, parent_exit) {
                (Some((by, at)), _) => {
                    marks.push(Mark::Reap {
                        parent: by,
                        child: p.pid,
                        t: at,
                    });
                    Zombie {
                        pid: p.pid,
                        from: *died,
                        to: at.max(*died),
                        how: format!("zombie until reaped by {}", trace.role(by)),
                    }
                }
                (None, Some(pe)) if p.parent.is_some() => Zombie {
                    pid: p.pid,
                    from: *died,
                    to: pe.max(*died),
                    how: format!(
                        "zombie: never reaped; {} exited, adopted by the tracer",
                        trace.role(p.parent.unwrap_or(0))
                    ),
                },
                (None, _) if p.parent.is_some() => Zombie {
                    pid: p.pid,
                    from: *died,
                    to: end.max(*died),
                    how: "zombie: never reaped".into(),
                },
                _ => continue,
            };
            zombies.push(z);
        }
        marks.sort_by(|a, b| mark_t(a).total_cmp(&mark_t(b)));
        Chart {
            trace,
            messages,
            marks,
            zombies,
        }
    }

    /// Exits by a signal that ipclab's scenario sent say so: a SIGKILL leaves no `--- SIG ---`
    /// line naming its sender.
    pub fn sent_by_ipclab(&mut self, sent: &[(i32, String)]) {
        for m in &mut self.marks {
            if let Mark::Exit { pid, how, .. } = m {
                if sent
                    .iter()
                    .any(|(p, s)| p == pid && how.ends_with(s.as_str()))
                {
                    how.push_str(" (sent by ipclab)");
                }
            }
        }
    }

    /// Heartbeats (pid, time on the trace's clock) from the event log, within each process's life.
    pub fn add_beats(&mut self, beats: &[(i32, f64)]) {
        for &(pid, t) in beats {
            let Some(p) = self.trace.procs.get(&pid) else {
                continue;
            };
            if t >= p.born && p.exit.as_ref().is_none_or(|e| t <= e.0) {
                self.marks.push(Mark::Beat { pid, t });
            }
        }
        self.marks.sort_by(|a, b| mark_t(a).total_cmp(&mark_t(b)));
    }

    /// Processes in tree order (each root, then its descendants depth first).
    fn columns(&self) -> Vec<i32> {
        let mut out = Vec::new();
        let mut stack: Vec<i32> = self.trace.roots.iter().rev().copied().collect();
        while let Some(p) = stack.pop() {
            out.push(p);
            for c in self.trace.children(p).into_iter().rev() {
                stack.push(c);
            }
        }
        out
    }

    /// The chart as text: one line per message and process event, in time order.
    pub fn text(&self) -> String {
        let t0 = self.trace.t0;
        let r = |p: i32| self.trace.role(p).to_string();
        let mut rows: Vec<(f64, String)> = Vec::new();
        for m in &self.messages {
            rows.push((m.sent, format!("{} -> {}  {}", r(m.from), r(m.to), m.label)));
        }
        for mk in &self.marks {
            let line = match mk {
                Mark::Fork { parent, child, .. } => format!("{} forks {}", r(*parent), r(*child)),
                Mark::Exec { pid, program, .. } => format!("{} execs {program}", r(*pid)),
                Mark::Exit { pid, how, .. } => format!("{} {how}", r(*pid)),
                Mark::Reap { parent, child, .. } => format!("{} reaps {}", r(*parent), r(*child)),
                Mark::Signal { pid, name, .. } => format!("{} gets {name}", r(*pid)),
                Mark::Kill { from, to, name, .. } => {
                    format!("{} kill({}, {name})", r(*from), r(*to))
                }
                // Too many to list; the SVG draws them.
                Mark::Beat { .. } => continue,
            };
            rows.push((mark_t(mk), line));
        }
        for z in &self.zombies {
            rows.push((
                z.from,
                format!(
                    "{} is a zombie for {:.1} ms ({})",
                    r(z.pid),
                    (z.to - z.from) * 1e3,
                    z.how
                ),
            ));
        }
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut s = String::new();
        for (t, line) in rows {
            let _ = writeln!(s, "{:>10.3}  {line}", (t - t0) * 1e3);
        }
        s
    }

    /// The chart as SVG 1.1 (a browser and rsvg-convert render it). Time runs down by rank,
    /// not to scale, so a 1 s pause takes no more room than 1 µs; a zombie's duration is
    /// written beside it, and a long one drawn with a break. Lines are drawn first, every
    /// label after them with a white halo, each moved until it overlaps no other label.
    pub fn svg(&self, title: &str) -> String {
        let cols = self.columns();
        let x_of: BTreeMap<i32, f64> = cols
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, 90.0 + 170.0 * i as f64))
            .collect();
        let mut times: Vec<f64> = Vec::new();
        for m in &self.messages {
            times.push(m.sent);
            times.push(m.received);
        }
        // Heartbeats take no row of their own: each sits between the events around it.
        times.extend(
            self.marks
                .iter()
                .filter(|m| !matches!(m, Mark::Beat { .. }))
                .map(mark_t),
        );
        for p in self.trace.procs.values() {
            times.push(p.born);
        }
        for z in &self.zombies {
            times.push(z.to);
        }
        times.sort_by(|a, b| a.total_cmp(b));
        times.dedup();
        let row = 22.0;
        let top = 80.0;
        let y = |t: f64| -> f64 {
            let i = times.partition_point(|x| *x < t);
            top + row * i as f64
        };
        let y_between = |t: f64| -> f64 {
            let i = times.partition_point(|x| *x < t);
            match (i.checked_sub(1).and_then(|j| times.get(j)), times.get(i)) {
                (Some(a), Some(b)) if b > a => top + row * ((i - 1) as f64 + (t - a) / (b - a)),
                _ => y(t),
            }
        };
        let width = 90.0 + 170.0 * cols.len().max(1) as f64 + 320.0;
        let mut wires = String::new();
        let mut labels = Labels::default();
        let mut beats = 0;
        let mut groups = String::new();
        let end_t = self.trace.events.last().map_or(0.0, |e| e.t);
        for p in &cols {
            let pr = &self.trace.procs[p];
            let x = x_of[p];
            let y0 = y(pr.born);
            let y1 = pr.exit.as_ref().map_or(y(end_t) + row, |e| y(e.0));
            let _ = writeln!(
                wires,
                r##"<line x1="{x:.0}" y1="{y0:.0}" x2="{x:.0}" y2="{y1:.0}" stroke="#444" stroke-width="2"/>"##
            );
            let t = labels.text(x, y0 - 8.0, Anchor::Middle, &pr.role, "#000", true);
            let _ = writeln!(groups, r##"<g class="lifeline" data-pid="{p}">{t}</g>"##);
        }
        for z in &self.zombies {
            let x = x_of.get(&z.pid).copied().unwrap_or(0.0);
            let (y0, y1) = (y(z.from), y(z.to).max(y(z.from) + 6.0));
            let ms = (z.to - z.from) * 1e3;
            let _ = writeln!(
                wires,
                r##"<rect x="{:.0}" y="{y0:.0}" width="16" height="{:.0}" fill="#e23" fill-opacity="0.35" stroke="#b00"/>"##,
                x - 8.0,
                y1 - y0
            );
            // Long against the rows around it (time is by rank): a break says so.
            if ms >= 10.0 {
                let m = (y0 + y1) / 2.0;
                let _ = writeln!(
                    wires,
                    r##"<path d="M{:.0},{:.0} l20,-5 M{:.0},{:.0} l20,-5" stroke="#b00" stroke-width="1.5" fill="none"/>"##,
                    x - 10.0,
                    m,
                    x - 10.0,
                    m + 5.0
                );
            }
            let t = labels.text(
                x + 12.0,
                y0 + 12.0,
                Anchor::Start,
                &format!("{} ({ms:.1} ms)", z.how),
                "#b00",
                false,
            );
            let _ = writeln!(groups, r##"<g class="zombie">{t}</g>"##);
        }
        for m in &self.messages {
            let (Some(x1), Some(x2)) = (x_of.get(&m.from), x_of.get(&m.to)) else {
                continue;
            };
            let (y1, y2) = (y(m.sent), y(m.received).max(y(m.sent)));
            let t = arrow(&mut wires, &mut labels, (*x1, y1), (*x2, y2), &m.label);
            let _ = writeln!(
                groups,
                r##"<g class="message" data-from="{}" data-to="{}">{t}</g>"##,
                esc(self.trace.role(m.from)),
                esc(self.trace.role(m.to)),
            );
        }
        for mk in &self.marks {
            let mut line = |a: i32, b: i32, t: f64, text: &str, class: &str| {
                let (Some(x1), Some(x2)) = (x_of.get(&a), x_of.get(&b)) else {
                    return;
                };
                let yy = y(t);
                let _ = writeln!(
                    wires,
                    r##"<line x1="{x1:.0}" y1="{yy:.0}" x2="{x2:.0}" y2="{yy:.0}" stroke="#777" stroke-dasharray="4,3" marker-end="url(#thin)"/>"##
                );
                let (lx, anchor) = if x2 > x1 {
                    (x1 + 8.0, Anchor::Start)
                } else {
                    (x1 - 8.0, Anchor::End)
                };
                let txt = labels.text(lx, yy - 4.0, anchor, text, "#555", false);
                let _ = writeln!(groups, r##"<g class="{class}">{txt}</g>"##);
            };
            match mk {
                Mark::Fork { parent, child, t } => line(*parent, *child, *t, "fork", "fork"),
                Mark::Reap { parent, child, t } => {
                    line(*child, *parent, *t, "reaped (wait)", "reap")
                }
                Mark::Kill { from, to, t, name } => {
                    line(*from, *to, *t, &format!("kill {name}"), "kill")
                }
                _ => {}
            }
            let mut note = |p: i32, t: f64, text: &str, class: &str, color: &str| {
                let Some(x) = x_of.get(&p) else { return };
                let yy = y(t);
                let _ = writeln!(
                    wires,
                    r##"<circle cx="{x:.0}" cy="{yy:.0}" r="4" fill="{color}"/>"##
                );
                let txt = labels.text(x + 8.0, yy + 4.0, Anchor::Start, text, color, false);
                let _ = writeln!(groups, r##"<g class="{class}">{txt}</g>"##);
            };
            match mk {
                Mark::Exec { pid, t, program } => {
                    note(*pid, *t, &format!("exec {program}"), "exec", "#2a7")
                }
                Mark::Exit { pid, t, how } => note(*pid, *t, how, "exit", "#000"),
                Mark::Signal { pid, t, name } => note(*pid, *t, name, "signal", "#a50"),
                Mark::Beat { pid, t } => {
                    if let Some(x) = x_of.get(pid) {
                        let _ = writeln!(
                            wires,
                            r##"<g class="beat"><path d="M{x:.1},{:.1} l-5,-5 a2.5,2.5 0 0 1 5,-2 a2.5,2.5 0 0 1 5,2 z" fill="#e23"/></g>"##,
                            y_between(*t) + 3.0
                        );
                        beats += 1;
                    }
                }
                _ => {}
            }
        }
        if beats > 0 {
            let t = labels.text(
                10.0,
                40.0,
                Anchor::Start,
                &format!("♥ {beats} heartbeats, from the event log (they go through shared memory, which strace cannot see)"),
                "#e23",
                false,
            );
            let _ = writeln!(groups, r##"<g class="legend">{t}</g>"##);
        }
        let height = (top + row * (times.len() as f64 + 2.0)).max(labels.bottom() + row);
        document(width, height, title, &wires, &groups)
    }
}

/// A message's arrow from (x1, y1) to (x2, y2) into `wires`, and its label: above the start
/// of the arrow, on the sender's side, where a slanted arrow does not run through it.
pub(super) fn arrow(
    wires: &mut String,
    labels: &mut Labels,
    (x1, y1): (f64, f64),
    (x2, y2): (f64, f64),
    label: &str,
) -> String {
    let _ = writeln!(
        wires,
        r##"<line x1="{x1:.0}" y1="{y1:.0}" x2="{x2:.0}" y2="{y2:.0}" stroke="#1f4e9c" stroke-width="1.5" marker-end="url(#arrow)"/>"##
    );
    let (lx, anchor) = if x2 > x1 {
        (x1 + 8.0, Anchor::Start)
    } else {
        (x1 - 8.0, Anchor::End)
    };
    labels.text(lx, y1 - 4.0, anchor, label, "#1f4e9c", false)
}

/// The SVG document around a chart's lines (drawn first) and labels (drawn over them).
/// The lifelines of a chart: one vertical line per name from `top` to `bottom`, `gap` apart from
/// `left`, each named above (in a `lifeline` group).
pub(super) fn lifelines(
    (wires, labels, groups): (&mut String, &mut Labels, &mut String),
    names: &[String],
    (left, gap): (f64, f64),
    (top, bottom): (f64, f64),
) {
    for (i, name) in names.iter().enumerate() {
        let x = left + gap * i as f64;
        let _ = writeln!(
            wires,
            r##"<line x1="{x:.0}" y1="{top:.0}" x2="{x:.0}" y2="{bottom:.0}" stroke="#444" stroke-width="2"/>"##
        );
        let t = labels.text(x, top - 10.0, Anchor::Middle, name, "#000", true);
        let _ = writeln!(groups, r##"<g class="lifeline">{t}</g>"##);
    }
}

/// A row's time in the left margin, in milliseconds.
pub(super) fn time_label(labels: &mut Labels, y: f64, ms: f64) -> String {
    labels.text(
        8.0,
        y + 4.0,
        Anchor::Start,
        &format!("{ms:.3} ms"),
        "#777",
        false,
    )
}

pub(super) fn document(width: f64, height: f64, title: &str, wires: &str, labels: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="monospace" font-size="12">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#1f4e9c"/></marker>
<marker id="thin" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#777"/></marker></defs>
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="20" font-size="14" font-weight="bold">{}</text>"##,
        esc(title)
    );
    s.push_str(wires);
    s.push_str(labels);
    s.push_str("</svg>\n");
    s
}

#[derive(Clone, Copy)]
pub(super) enum Anchor {
    Start,
    Middle,
    End,
}

/// Monospace 12 px: the box a label takes, estimated as the renderers draw it.
pub const CHAR_W: f64 = 7.3;
pub const TEXT_H: f64 = 13.0;

/// Labels placed so far; each new one goes where it was asked, or the nearest spot below
/// (then further right) where its box meets no other.
#[derive(Default)]
pub(super) struct Labels {
    boxes: Vec<(f64, f64, f64, f64)>,
}

impl Labels {
    pub(super) fn bottom(&self) -> f64 {
        self.boxes.iter().map(|b| b.3).fold(0.0, f64::max)
    }

    /// A `<text>` at (x, y) (y the baseline), moved until free, with a white halo.
    pub(super) fn text(
        &mut self,
        x: f64,
        y: f64,
        a: Anchor,
        text: &str,
        color: &str,
        bold: bool,
    ) -> String {
        let w = text.chars().count() as f64 * CHAR_W;
        let x0 = |x: f64| match a {
            Anchor::Start => x,
            Anchor::Middle => x - w / 2.0,
            Anchor::End => x - w,
        };
        let free = |bx: (f64, f64, f64, f64), boxes: &[(f64, f64, f64, f64)]| {
            boxes
                .iter()
                .all(|o| bx.2 <= o.0 || o.2 <= bx.0 || bx.3 <= o.1 || o.3 <= bx.1)
        };
        let at = |x: f64, y: f64| (x0(x), y - TEXT_H + 3.0, x0(x) + w, y + 3.0);
        let mut spot = (x, y);
        'search: for dx in [0.0, 40.0, 80.0, 160.0, 320.0] {
            for step in 0..12 {
                let cand = (x + dx, y + step as f64 * (TEXT_H + 1.0));
                if free(at(cand.0, cand.1), &self.boxes) {
                    spot = cand;
                    break 'search;
                }
            }
            spot = (x + dx + 40.0, y);
        }
        self.boxes.push(at(spot.0, spot.1));
        let anchor = match a {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        };
        format!(
            r##"<text x="{:.1}" y="{:.1}" text-anchor="{anchor}" fill="{color}"{} stroke="white" stroke-width="3" paint-order="stroke">{}</text>"##,
            spot.0,
            spot.1,
            if bold { r#" font-weight="bold""# } else { "" },
            esc(text)
        )
    }
}

/// The sender of a user-sent signal (`si_code=SI_USER, si_pid=N`), from strace's siginfo.
fn sender(body: &str) -> Option<i32> {
    if !body.contains("SI_USER") && !body.contains("SI_QUEUE") {
        return None;
    }
    let rest = &body[body.find("si_pid=")? + 7..];
    rest.split([',', '}']).next()?.trim().parse().ok()
}

fn mark_t(m: &Mark) -> f64 {
    match m {
        Mark::Fork { t, .. }
        | Mark::Exec { t, .. }
        | Mark::Exit { t, .. }
        | Mark::Reap { t, .. }
        | Mark::Signal { t, .. }
        | Mark::Kill { t, .. }
        | Mark::Beat { t, .. } => *t,
    }
}

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strace_strings_are_unquoted() {
        assert_eq!(
            unquote(r#"4</x>, "ping 1\n\0\x41\101\"", 7"#).unwrap(),
            b"ping 1\n\0AA\""
        );
        assert_eq!(
            channel("4</tmp/d/ping>, \"x\"", false, &BTreeMap::new()).unwrap(),
            "/tmp/d/ping"
        );
        assert_eq!(
            channel(
                "3<UNIX-STREAM:[10->11,\"/d/s\"]>, \"x\"",
                false,
                &BTreeMap::new()
            )
            .unwrap(),
            "sock:10->11"
        );
        assert_eq!(
            channel(
                "5<UNIX-STREAM:[11]>, \"x\"",
                true,
                &[("11".to_string(), "10".to_string())].into()
            )
            .unwrap(),
            "sock:10->11"
        );
    }
}
