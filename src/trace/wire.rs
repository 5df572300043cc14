//! The wire as a sequence chart: a lifeline per TCP endpoint (its host and role), an arrow per
//! segment from sender to receiver, named as the course names it (SYN, SYN-ACK, ACK, PSH-ACK
//! with its bytes, FIN-ACK), time running down by rank with the capture's milliseconds beside.

use super::chart::{arrow, document, esc, lifelines, time_label, Labels};
use crate::wire::Segment;
use std::fmt::Write as _;
use std::net::SocketAddrV4;

/// What a segment says: its name, its bytes, its (relative) numbers.
pub fn label(s: &Segment) -> String {
    let mut l = s.name();
    if s.len > 0 {
        let _ = write!(l, " {} B", s.len);
    }
    let _ = write!(l, " seq {}", s.seq);
    if s.ack_flag {
        let _ = write!(l, " ack {}", s.ack);
    }
    l
}

/// The endpoints in order of first appearance, each with its name (or its address).
fn columns(segments: &[Segment], names: &[(SocketAddrV4, String)]) -> Vec<(SocketAddrV4, String)> {
    let mut cols: Vec<(SocketAddrV4, String)> = Vec::new();
    for s in segments {
        for a in [s.src, s.dst] {
            if !cols.iter().any(|(x, _)| *x == a) {
                let name = names
                    .iter()
                    .find(|(x, _)| *x == a)
                    .map_or_else(|| a.to_string(), |(_, n)| format!("{n} {a}"));
                cols.push((a, name));
            }
        }
    }
    cols
}

/// One line per segment: time, who to whom, what.
pub fn text(segments: &[Segment], names: &[(SocketAddrV4, String)]) -> String {
    let cols = columns(segments, names);
    let name = |a: SocketAddrV4| {
        cols.iter()
            .find(|(x, _)| *x == a)
            .map_or(String::new(), |(_, n)| n.clone())
    };
    let t0 = segments.first().map_or(0.0, |s| s.t);
    let mut out = String::new();
    for s in segments {
        let _ = writeln!(
            out,
            "{:>9.3} ms  {} -> {}  {}",
            (s.t - t0) * 1e3,
            name(s.src),
            name(s.dst),
            label(s)
        );
    }
    out
}

/// The chart as SVG 1.1; labels never overlap (the trace chart's placement).
pub fn svg(segments: &[Segment], names: &[(SocketAddrV4, String)], title: &str) -> String {
    let cols = columns(segments, names);
    let (left, gap, top, row) = (170.0, 330.0, 80.0, 30.0);
    let x_of = |a: SocketAddrV4| {
        cols.iter()
            .position(|(x, _)| *x == a)
            .map(|i| left + gap * i as f64)
    };
    let bottom = top + row * (segments.len() as f64 + 1.0);
    let mut wires = String::new();
    let mut labels = Labels::default();
    let mut groups = String::new();
    let names: Vec<String> = cols.iter().map(|(_, n)| n.clone()).collect();
    lifelines(
        (&mut wires, &mut labels, &mut groups),
        &names,
        (left, gap),
        (top, bottom),
    );
    let t0 = segments.first().map_or(0.0, |s| s.t);
    for (i, s) in segments.iter().enumerate() {
        let (Some(x1), Some(x2)) = (x_of(s.src), x_of(s.dst)) else {
            continue;
        };
        // Sent on one row, received lower: the slant is the segment's transit.
        let y1 = top + row * (i as f64 + 0.5);
        let y2 = y1 + row * 0.6;
        let t = arrow(&mut wires, &mut labels, (x1, y1), (x2, y2), &label(s));
        let ms = time_label(&mut labels, y1, (s.t - t0) * 1e3);
        let _ = writeln!(
            groups,
            r##"<g class="segment" data-flags="{}">{t}{ms}</g>"##,
            esc(&s.flags())
        );
    }
    let width = left + gap * cols.len().saturating_sub(1) as f64 + 260.0;
    let height = (bottom + row).max(labels.bottom() + row);
    document(width, height, title, &wires, &groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(src: &str, dst: &str, flags: &str, seq: u32, ack: u32, len: usize) -> Segment {
        format!("0.001 {src} > {dst} [{flags}] seq {seq} ack {ack} len {len}")
            .parse()
            .unwrap()
    }

    #[test]
    fn a_connection_drawn_with_its_names() {
        let (c, s) = ("10.255.0.2:40000", "10.255.0.1:9875");
        let segs = vec![
            seg(c, s, "S", 0, 0, 0),
            seg(s, c, "S.", 0, 1, 0),
            seg(c, s, ".", 1, 1, 0),
            seg(c, s, "P.", 1, 1, 6),
        ];
        let names = vec![(s.parse().unwrap(), "h1 server".to_string())];
        let t = text(&segs, &names);
        assert!(
            t.contains("10.255.0.2:40000 -> h1 server 10.255.0.1:9875  SYN seq 0"),
            "{t}"
        );
        assert!(t.contains("SYN-ACK seq 0 ack 1"), "{t}");
        assert!(t.contains("PSH-ACK 6 B seq 1 ack 1"), "{t}");
        let svg = svg(&segs, &names, "wire");
        assert_eq!(svg.matches(r#"class="segment""#).count(), 4);
        assert!(svg.contains("h1 server 10.255.0.1:9875"));
    }
}
