//! Properties of a distributed run, judged from evidence the grader holds itself (the kernel's
//! connections between the processes, a shared file the critical sections write), never from
//! what the programs say of themselves. Each failure is one sentence naming the processes, the
//! line or the link, and the property broken.

/// The processes in ring order (starting from the first, towards its lower-numbered
/// neighbour's other side), if `links` (pairs of indices into `names`, one per connection) make
/// one ring: every process with exactly two neighbours, one connection to each, all in one
/// cycle. A ring needs three processes at least.
pub fn ring(names: &[String], links: &[(usize, usize)]) -> Result<Vec<usize>, String> {
    let n = names.len();
    if n < 3 {
        return Err(format!("a ring needs 3 processes at least, not {n}"));
    }
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in links {
        if a >= n || b >= n || a == b {
            continue;
        }
        next[a].push(b);
        next[b].push(a);
    }
    for (i, ns) in next.iter().enumerate() {
        let mut distinct = ns.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != ns.len() {
            let twice: Vec<&str> = distinct
                .iter()
                .filter(|d| ns.iter().filter(|x| x == d).count() > 1)
                .map(|d| names[*d].as_str())
                .collect();
            return Err(format!(
                "{} has more than one connection to {}: a ring has one per neighbour",
                names[i],
                twice.join(", ")
            ));
        }
        if ns.len() != 2 {
            let who: Vec<&str> = ns.iter().map(|d| names[*d].as_str()).collect();
            return Err(format!(
                "{} has {} neighbour(s) ({}): in a ring each process has exactly 2",
                names[i],
                ns.len(),
                if who.is_empty() {
                    "none".to_string()
                } else {
                    who.join(", ")
                }
            ));
        }
    }
    // Every degree is 2: the links are disjoint cycles. Walk the one through the first.
    let mut order = vec![0];
    let (mut prev, mut at) = (0, next[0][0]);
    while at != 0 {
        order.push(at);
        let step = if next[at][0] == prev {
            next[at][1]
        } else {
            next[at][0]
        };
        (prev, at) = (at, step);
    }
    if order.len() != n {
        let cycle: Vec<&str> = order.iter().map(|i| names[*i].as_str()).collect();
        let rest: Vec<&str> = (0..n)
            .filter(|i| !order.contains(i))
            .map(|i| names[i].as_str())
            .collect();
        return Err(format!(
            "two rings, not one: {} closes on itself without {}",
            cycle.join(" - "),
            rest.join(", ")
        ));
    }
    Ok(order)
}

/// One critical section as the shared file shows it: `BEGIN id seq`, then `END id seq`, each
/// one line written at once by the holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub id: String,
    pub seq: u64,
    /// Line numbers (from 1) of its BEGIN and END.
    pub begin: usize,
    pub end: usize,
}

/// The critical sections of a shared file, if no two overlap: each BEGIN is followed by the
/// END of the same id and seq before any other line of the protocol. Blank lines are skipped;
/// any other line is a failure (a torn or interleaved write shows up as one).
pub fn critical_sections(text: &str) -> Result<Vec<Section>, String> {
    let mut done = Vec::new();
    let mut open: Option<(String, u64, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        let (kind, id, seq) = match w[..] {
            [k @ ("BEGIN" | "END"), id, seq] => match seq.parse::<u64>() {
                Ok(s) => (k, id, s),
                Err(_) => return Err(format!("line {n}: {line:?}: seq is not a number")),
            },
            _ => {
                return Err(format!(
                    "line {n}: {line:?} is not \"BEGIN id seq\" or \"END id seq\" (a torn or \
                     interleaved write?)"
                ))
            }
        };
        match (kind, &open) {
            ("BEGIN", None) => open = Some((id.to_string(), seq, n)),
            ("BEGIN", Some((holder, hseq, since))) => {
                return Err(format!(
                    "line {n}: {id} begins section {seq} while {holder} holds section {hseq} \
                     (since line {since}): two holders at once"
                ))
            }
            ("END", Some((holder, hseq, since))) if holder == id && *hseq == seq => {
                done.push(Section {
                    id: id.to_string(),
                    seq,
                    begin: *since,
                    end: n,
                });
                open = None;
            }
            ("END", Some((holder, hseq, since))) => {
                return Err(format!(
                    "line {n}: {id} ends section {seq} while {holder} holds section {hseq} \
                     (since line {since})"
                ))
            }
            _ => {
                return Err(format!(
                    "line {n}: {id} ends section {seq}, which nobody began"
                ))
            }
        }
    }
    if let Some((holder, seq, since)) = open {
        return Err(format!(
            "{holder} began section {seq} (line {since}) and never ended it"
        ));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("p{i}")).collect()
    }

    /// A ring is found whatever the order of its links; each way of not being one is said with
    /// the process that shows it.
    #[test]
    fn ring_is_one_cycle_through_every_process() {
        let order = ring(&names(4), &[(2, 3), (0, 1), (0, 3), (1, 2)]).unwrap();
        assert!(order == [0, 1, 2, 3] || order == [0, 3, 2, 1], "{order:?}");
        let e = ring(&names(4), &[(0, 1), (1, 2), (2, 3)]).unwrap_err();
        assert!(e.starts_with("p0 has 1 neighbour(s) (p1)"), "{e}");
        let e = ring(&names(4), &[(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)]).unwrap_err();
        assert!(e.contains("has 3 neighbour(s)"), "{e}");
        let e = ring(&names(6), &[(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3)]).unwrap_err();
        assert!(e.contains("two rings") && e.contains("p3, p4, p5"), "{e}");
        let e = ring(&names(3), &[(0, 1), (0, 1), (1, 2), (2, 0)]).unwrap_err();
        assert!(e.contains("more than one connection"), "{e}");
        assert!(ring(&names(2), &[(0, 1), (0, 1)]).is_err());
    }

    /// Sections one after the other pass; an overlap, an END of another's section, a torn line
    /// and a section never ended are each said with their line.
    #[test]
    fn critical_sections_never_overlap() {
        let ok = "BEGIN p1 1\nEND p1 1\n\nBEGIN p3 1\nEND p3 1\nBEGIN p1 2\nEND p1 2\n";
        let s = critical_sections(ok).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(
            s[1],
            Section {
                id: "p3".into(),
                seq: 1,
                begin: 4,
                end: 5
            }
        );
        let e = critical_sections("BEGIN p1 1\nBEGIN p3 1\nEND p1 1\nEND p3 1\n").unwrap_err();
        assert_eq!(
            e,
            "line 2: p3 begins section 1 while p1 holds section 1 (since line 1): two holders at once"
        );
        let e = critical_sections("BEGIN p1 1\nEND p2 1\n").unwrap_err();
        assert!(
            e.starts_with("line 2: p2 ends section 1 while p1 holds"),
            "{e}"
        );
        let e = critical_sections("BEGIN p1 1\nEND pBEGIN p2 1\n").unwrap_err();
        assert!(e.contains("torn or interleaved"), "{e}");
        let e = critical_sections("END p1 1\n").unwrap_err();
        assert!(e.contains("nobody began"), "{e}");
        let e = critical_sections("BEGIN p1 4\n").unwrap_err();
        assert!(e.contains("never ended"), "{e}");
    }
}
