//! The relay's records (`ipclab hosts relay on --record FILE`) as a sequence chart across
//! hosts: a lifeline per process (its host, name and pid there, as the relay found it in the
//! host's socket table; its address when it could not), an arrow per piece from the moment the
//! relay read it to the moment it was due at the other end. A delay shows as a slant, and
//! pieces that overtake one another (a Lamport diagram's anomaly) as crossing arrows.

use super::chart::{arrow, document, esc, lifelines, time_label, Labels};
use crate::error::{Error, Result};
use std::fmt::Write as _;

/// One piece of a connection, or its end (`len` 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub conn: u64,
    /// Lifeline names: `h1 tcp-client 12`, or `h1 10.213.0.1:40000`.
    pub from: String,
    pub to: String,
    /// Seconds from the relay's start: read, then due at the other end.
    pub t: f64,
    pub due: f64,
    pub len: usize,
    pub bytes: Vec<u8>,
}

/// The pieces of a record file, in the order read; a line that is not a record is bad input.
pub fn pieces(text: &str) -> Result<Vec<Piece>> {
    use std::collections::HashMap;
    // conn -> (its "from" endpoint, the client's lifeline, the server's lifeline)
    let mut names: HashMap<u64, (String, String, String)> = HashMap::new();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || Error::usage(format!("record line {}: not a relay record", n + 1));
        let v: serde_json::Value = serde_json::from_str(line).map_err(|_| bad())?;
        let conn = v["conn"].as_u64().ok_or_else(bad)?;
        let (from, to) = (
            v["from"].as_str().ok_or_else(bad)?,
            v["to"].as_str().ok_or_else(bad)?,
        );
        // "h1 10.213.0.1:40000": its host, then the process found there, if any.
        let life = |end: &str, proc: &serde_json::Value| {
            let host = end.split(' ').next().unwrap_or(end);
            proc.as_str()
                .map_or_else(|| end.to_string(), |p| format!("{host} {p}"))
        };
        match v["ev"].as_str() {
            Some("open") => {
                names.insert(
                    conn,
                    (
                        from.to_string(),
                        life(from, &v["from_proc"]),
                        life(to, &v["to_proc"]),
                    ),
                );
            }
            Some("refused") => {}
            ev @ (None | Some("eof")) => {
                let (t, due) = (
                    v["t"].as_f64().ok_or_else(bad)?,
                    v["due"].as_f64().ok_or_else(bad)?,
                );
                let bytes = if ev.is_none() {
                    unhex(v["hex"].as_str().ok_or_else(bad)?).ok_or_else(bad)?
                } else {
                    Vec::new()
                };
                let (a, b) = match names.get(&conn) {
                    Some((client, c, s)) if from == client => (c.clone(), s.clone()),
                    Some((_, c, s)) => (s.clone(), c.clone()),
                    None => (from.to_string(), to.to_string()),
                };
                out.push(Piece {
                    conn,
                    from: a,
                    to: b,
                    t,
                    due,
                    len: bytes.len(),
                    bytes,
                });
            }
            Some(_) => return Err(bad()),
        }
    }
    Ok(out)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What a piece says: its size and its first bytes as text, or "end" (a shutdown or close).
pub fn label(p: &Piece) -> String {
    if p.len == 0 {
        return "end".to_string();
    }
    let head = &p.bytes[..p.bytes.len().min(24)];
    let more = if p.bytes.len() > head.len() {
        "…"
    } else {
        ""
    };
    format!("{} B \"{}{more}\"", p.len, crate::inet::shown(head))
}

/// The lifelines in order of first appearance.
fn columns(pieces: &[Piece]) -> Vec<String> {
    let mut cols: Vec<String> = Vec::new();
    for p in pieces {
        for n in [&p.from, &p.to] {
            if !cols.contains(n) {
                cols.push(n.clone());
            }
        }
    }
    cols
}

/// One line per piece: read and due times, who to whom, what, how long it was held.
pub fn text(pieces: &[Piece]) -> String {
    let t0 = pieces.iter().map(|p| p.t).fold(f64::INFINITY, f64::min);
    let mut out = String::new();
    for p in pieces {
        let _ = writeln!(
            out,
            "{:>10.3} ms -> {:>10.3} ms  {} -> {}  {}{}",
            (p.t - t0) * 1e3,
            (p.due - t0) * 1e3,
            p.from,
            p.to,
            label(p),
            if p.due > p.t {
                format!(" (held {:.1} ms)", (p.due - p.t) * 1e3)
            } else {
                String::new()
            }
        );
    }
    out
}

/// The chart as SVG 1.1. Time runs down by rank: every read and every due time is a row,
/// so an arrow spans the rows of what happened while its piece was held.
pub fn svg(pieces: &[Piece], title: &str) -> String {
    let cols = columns(pieces);
    let (left, gap, top, row) = (170.0, 330.0, 80.0, 26.0);
    let mut instants: Vec<f64> = pieces.iter().flat_map(|p| [p.t, p.due]).collect();
    instants.sort_by(|a, b| a.total_cmp(b));
    instants.dedup();
    let y_of = |t: f64| {
        let i = instants.partition_point(|x| *x < t);
        top + row * (i as f64 + 0.5)
    };
    let x_of = |n: &str| {
        cols.iter()
            .position(|c| c == n)
            .map_or(left, |i| left + gap * i as f64)
    };
    let bottom = top + row * (instants.len() as f64 + 1.0);
    let (mut wires, mut groups, mut labels) = (String::new(), String::new(), Labels::default());
    lifelines(
        (&mut wires, &mut labels, &mut groups),
        &cols,
        (left, gap),
        (top, bottom),
    );
    let t0 = instants.first().copied().unwrap_or(0.0);
    for p in pieces {
        let (y1, y2) = (y_of(p.t), y_of(p.due));
        // A piece copied at once still slants a little: sender and receiver stay apart.
        let y2 = y2.max(y1 + row * 0.6);
        let t = arrow(
            &mut wires,
            &mut labels,
            (x_of(&p.from), y1),
            (x_of(&p.to), y2),
            &label(p),
        );
        let ms = time_label(&mut labels, y1, (p.t - t0) * 1e3);
        let _ = writeln!(
            groups,
            r##"<g class="piece" data-conn="{}" data-held-ms="{:.1}">{t}{ms}</g>"##,
            p.conn,
            (p.due - p.t) * 1e3
        );
    }
    let width = left + gap * cols.len().saturating_sub(1) as f64 + 260.0;
    let height = (bottom + row).max(labels.bottom() + row);
    document(width, height, &esc(title), &wires, &groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two connections to one server, the first held 80 ms: each process one lifeline, the
    /// reply of the second overtaking the first's piece, the times and bytes kept.
    #[test]
    fn records_become_lifelines_per_process() {
        let rec = r#"{"t":0.001,"conn":1,"ev":"open","from":"h1 10.213.0.1:40000","to":"h3 10.213.0.3:9875","from_proc":"client 12","to_proc":"server 7"}
{"t":0.002,"due":0.082,"conn":1,"from":"h1 10.213.0.1:40000","to":"h3 10.213.0.3:9875","len":5,"hex":"68656c6c6f"}
{"t":0.003,"conn":2,"ev":"open","from":"h2 10.213.0.2:40001","to":"h3 10.213.0.3:9875","from_proc":null,"to_proc":"server 7"}
{"t":0.004,"due":0.004,"conn":2,"from":"h2 10.213.0.2:40001","to":"h3 10.213.0.3:9875","len":2,"hex":"6869"}
{"t":0.005,"due":0.005,"conn":2,"from":"h3 10.213.0.3:9875","to":"h2 10.213.0.2:40001","len":2,"hex":"4f4b"}
{"t":0.090,"due":0.170,"conn":1,"from":"h1 10.213.0.1:40000","to":"h3 10.213.0.3:9875","ev":"eof"}
"#;
        let p = pieces(rec).unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!(
            (p[0].from.as_str(), p[0].to.as_str()),
            ("h1 client 12", "h3 server 7")
        );
        assert_eq!(
            p[1].from, "h2 10.213.0.2:40001",
            "no process found: its address"
        );
        assert_eq!(
            (p[2].from.as_str(), p[2].to.as_str()),
            ("h3 server 7", "h2 10.213.0.2:40001")
        );
        assert_eq!(label(&p[0]), "5 B \"hello\"");
        assert_eq!(label(&p[3]), "end");
        assert_eq!(columns(&p).len(), 3, "one lifeline per process");
        let t = text(&p);
        assert!(
            t.contains("h1 client 12 -> h3 server 7  5 B \"hello\" (held 80.0 ms)"),
            "{t}"
        );
        let doc = svg(&p, "relay");
        assert_eq!(doc.matches(r#"<g class="piece""#).count(), 4, "{doc}");
        assert!(doc.contains(r#"data-held-ms="80.0""#), "{doc}");
        assert!(pieces("{\"conn\":1}\nnot json\n").is_err());
    }
}
