//! `ipclab trace`: each reference trace holds its lab's strace.expected key lines; lab 2's chart
//! has one arrow per message, a fork and a reap, for the reference and for a Python program
//! that reads one byte at a time; the no-wait fault's zombie interval is drawn; the SVG parses
//! and renders to PNG; without strace, one line and exit 2.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

fn trace(args: &[&str]) -> (i32, String, String) {
    let out = run(Command::new(bin("ipclab")).arg("trace").args(args));
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// (from role, to role, label) of every message arrow, and the classes of every group.
fn chart(svg: &Path) -> (Vec<(String, String, String)>, Vec<String>) {
    let text = std::fs::read_to_string(svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let mut arrows = Vec::new();
    let mut classes = Vec::new();
    for g in doc.descendants().filter(|n| n.has_tag_name("g")) {
        let class = g.attribute("class").unwrap_or("").to_string();
        if class == "message" {
            let label = g
                .descendants()
                .find(|n| n.has_tag_name("text"))
                .and_then(|t| t.text())
                .unwrap_or("")
                .to_string();
            arrows.push((
                g.attribute("data-from").unwrap().to_string(),
                g.attribute("data-to").unwrap().to_string(),
                label,
            ));
        }
        classes.push(class);
    }
    (arrows, classes)
}

fn renders(svg: &Path) {
    let png = svg.with_extension("png");
    let out = run(Command::new("rsvg-convert").arg("-o").arg(&png).arg(svg));
    assert!(out.status.success(), "rsvg-convert: {}", text(&out.stderr));
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 1000);
}

/// The box of every label but the title, as the chart's placer estimates it (monospace 12 px).
fn label_boxes(svg: &Path) -> Vec<(String, f64, f64, f64, f64)> {
    use ipclab::trace::chart::{CHAR_W, TEXT_H};
    let text = std::fs::read_to_string(svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("text") && n.attribute("font-size").is_none())
        .map(|n| {
            let x: f64 = n.attribute("x").unwrap().parse().unwrap();
            let y: f64 = n.attribute("y").unwrap().parse().unwrap();
            let s = n.text().unwrap_or("").to_string();
            let w = s.chars().count() as f64 * CHAR_W;
            let x0 = match n.attribute("text-anchor") {
                Some("middle") => x - w / 2.0,
                Some("end") => x - w,
                _ => x,
            };
            (s, x0, y - TEXT_H + 3.0, x0 + w, y + 3.0)
        })
        .collect()
}

#[test]
fn trace_every_reference_has_its_key_lines() {
    let _forks = common::fork_guard();
    let dir = tempfile::tempdir().unwrap();
    for n in 1..=7 {
        let lab = n.to_string();
        let svg = dir.path().join(format!("lab{n}.svg"));
        let (code, out, err) = trace(&[&lab, "--check", "--svg", svg.to_str().unwrap()]);
        assert_eq!(code, 0, "lab {n}: {out}\n{err}");
        assert!(out.contains("every key line"), "lab {n}: {out}");
        // Normalised: no raw pid of a traced process, the private directory shown as DIR.
        assert!(!out.contains("/tmp/ipclab-trace-"), "lab {n}: {out}");
        // No label overlaps another on the chart.
        let boxes = label_boxes(&svg);
        assert!(boxes.len() > 3, "lab {n}: {boxes:?}");
        for (i, a) in boxes.iter().enumerate() {
            for b in &boxes[i + 1..] {
                let apart = a.3 <= b.1 || b.3 <= a.1 || a.4 <= b.2 || b.4 <= a.2;
                assert!(apart, "lab {n}: {:?} overlaps {:?}", a.0, b.0);
            }
        }
        renders(&svg);
    }
    Clean::new("ipclab-trace").check();
}

/// 2N arrows between main and secondary (N of each direction, labelled ping i / pong i), one
/// fork, one reap; also when the program reads its FIFO one byte at a time (the fixture's
/// unbuffered readline does).
#[test]
fn trace_lab2_chart_has_one_arrow_per_message() {
    let _forks = common::fork_guard();
    let dir = tempfile::tempdir().unwrap();
    let fixture = common::fixture(2, "pingpong.py");
    let python = format!("/usr/bin/python3 {} fork", fixture.display());
    for (i, impl_cmd) in [None, Some(python.as_str())].into_iter().enumerate() {
        let n = rand::random_range(1..=12u32);
        let svg = dir.path().join(format!("lab2-{i}.svg"));
        let set = format!("N={n}");
        let mut args = vec![
            "2",
            "--set",
            &set,
            "--chart",
            "--svg",
            svg.to_str().unwrap(),
        ];
        if let Some(c) = impl_cmd {
            args.extend(["--impl", c]);
        }
        let (code, out, err) = trace(&args);
        assert_eq!(code, 0, "{out}\n{err}");
        let (arrows, classes) = chart(&svg);
        let mut want: Vec<(String, String, String)> = (1..=n)
            .flat_map(|k| {
                [
                    ("main".into(), "secondary".into(), format!("ping {k}")),
                    ("secondary".into(), "main".into(), format!("pong {k}")),
                ]
            })
            .collect();
        let mut got = arrows.clone();
        want.sort();
        got.sort();
        assert_eq!(got, want, "N = {n}, impl {impl_cmd:?}");
        let count = |c: &str| classes.iter().filter(|x| *x == c).count();
        assert_eq!((count("fork"), count("reap")), (1, 1), "{classes:?}");
        assert_eq!(count("zombie"), 1, "the secondary's exit-to-reap interval");
        if impl_cmd.is_some() {
            assert!(
                out.contains("read(3<DIR/ping>, \"p\", 1) = 1"),
                "the fixture reads one byte at a time: {out}"
            );
        }
        renders(&svg);
    }
}

/// Main exits without waiting: its dead secondary stays a zombie, drawn as never reaped.
#[test]
fn trace_no_wait_fault_draws_the_zombie() {
    let _forks = common::fork_guard();
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("nowait.svg");
    let cmd = format!("{} --fault no-wait", bin("pingpong").display());
    let (code, out, err) = trace(&[
        "2",
        "--impl",
        &cmd,
        "--chart",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("never reaped"), "{out}");
    let text = std::fs::read_to_string(&svg).unwrap();
    let (_, classes) = chart(&svg);
    assert!(classes.iter().any(|c| c == "zombie"), "{classes:?}");
    assert!(!classes.iter().any(|c| c == "reap"), "nothing reaps it");
    assert!(text.contains("never reaped"));
    renders(&svg);
}

/// No strace: one line naming the fix, exit 2. Unknown parameter or lab: exit 2.
#[test]
fn trace_bad_input_and_no_strace_are_exit_2() {
    let _forks = common::fork_guard();
    let out = run(Command::new(bin("ipclab"))
        .args(["trace", "2"])
        .env("PATH", "/nonexistent"));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("apt-get install strace"), "{err}");
    for (args, what) in [
        (vec!["2", "--set", "X=1"], "no parameter X"),
        (vec!["2", "--set", "N=0"], "out of the contract's range"),
        (vec!["2", "--set", "N"], "NAME=NUMBER"),
        (vec!["99"], "no lab 99"),
    ] {
        let (code, _, err) = trace(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(what), "{args:?}: {err}");
    }
}

/// The wire chart of a whole connection (handshake, data each way, FIN each way): one arrow
/// group per segment, from the right lifeline, no label over another, and it renders.
#[test]
fn wire_chart_of_a_connection() {
    let (c, s) = ("10.255.0.2:45086", "10.255.0.1:9875");
    let lines = [
        (c, s, "S", 0, 0, 0),
        (s, c, "S.", 0, 1, 0),
        (c, s, ".", 1, 1, 0),
        (c, s, "P.", 1, 1, 6),
        (s, c, ".", 1, 7, 0),
        (s, c, "P.", 1, 7, 3),
        (c, s, ".", 7, 4, 0),
        (c, s, "F.", 7, 4, 0),
        (s, c, "F.", 4, 8, 0),
        (c, s, ".", 8, 5, 0),
    ];
    let segments: Vec<ipclab::wire::Segment> = lines
        .iter()
        .enumerate()
        .map(|(i, (a, b, f, seq, ack, len))| {
            format!("0.{i:06} {a} > {b} [{f}] seq {seq} ack {ack} len {len}")
                .parse()
                .unwrap()
        })
        .collect();
    let names = vec![
        (s.parse().unwrap(), "h1 tcp-server".to_string()),
        (c.parse().unwrap(), "h2 tcp-client".to_string()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("wire.svg");
    std::fs::write(&svg, ipclab::trace::wire::svg(&segments, &names, "wire")).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let flags: Vec<&str> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("segment"))
        .map(|n| n.attribute("data-flags").unwrap())
        .collect();
    assert_eq!(
        flags,
        ["S", "S.", ".", "P.", ".", "P.", ".", "F.", "F.", "."]
    );
    let boxes = label_boxes(&svg);
    // Two lifelines, and a label and a time per segment.
    assert_eq!(boxes.len(), 2 + 2 * lines.len(), "{boxes:?}");
    assert!(
        boxes.iter().all(|b| b.1 >= 0.0),
        "a label starts off the page: {boxes:?}"
    );
    for (i, a) in boxes.iter().enumerate() {
        for b in &boxes[i + 1..] {
            let apart = a.3 <= b.1 || b.3 <= a.1 || a.4 <= b.2 || b.4 <= a.2;
            assert!(apart, "{:?} overlaps {:?}", a.0, b.0);
        }
    }
    renders(&svg);
}
