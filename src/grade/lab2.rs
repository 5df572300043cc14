//! Lab 2's contract, judged: `IMPL --exchanges N --dir DIR` (see labs/lab2-pingpong/README.md).

use super::harness::{DirEvent, Outcome};
use super::report::Check;
use crate::spec::Contract;
use std::collections::BTreeSet;
use std::path::Path;

pub fn judge(out: &Outcome, n: u64, dir: &Path, c: &Contract, timeout_s: f64) -> Vec<Check> {
    let main = out.main_pid;
    let secs = out.wall.as_secs_f64();
    let mut checks = Vec::new();
    let mut add = |name: &str, passed: bool, skipped: bool, detail: String| {
        let max = c.points.get(name).copied().unwrap_or(1);
        checks.push(Check {
            name: name.into(),
            passed,
            skipped,
            detail,
            points: if passed { max } else { 0 },
            max_points: max,
            secs,
        });
    };
    let lines: Vec<&str> = out.stdout_lines.iter().map(|(_, l)| l.as_str()).collect();
    let expected: Vec<String> = (1..=n)
        .flat_map(|i| [format!("ping {i}"), format!("pong {i}")])
        .collect();
    let descendants = descendants_of(out, main);
    let secondary = secondary(out, main, &descendants);
    let to = out.timed_out;
    let skip_to = "skipped: the run timed out".to_string();

    // exit-status
    if to {
        add("exit-status", false, true, skip_to.clone());
    } else {
        match out.main_status {
            Some(nix::sys::wait::WaitStatus::Exited(_, 0)) => add(
                "exit-status",
                true,
                false,
                "main exited with status 0".into(),
            ),
            Some(st) => add(
                "exit-status",
                false,
                false,
                format!(
                    "main {}: it must exit 0 after a clean run",
                    crate::process::describe(&st)
                ),
            ),
            None => add(
                "exit-status",
                false,
                false,
                "main's exit status was not seen".into(),
            ),
        }
    }

    // protocol
    if to {
        add("protocol", false, true, skip_to.clone());
    } else {
        add_protocol(&mut add, &lines, &expected, out);
    }

    // named-pipes
    let (ok, detail) = named_pipes(out, main, &secondary);
    add("named-pipes", ok, false, detail);

    // no-zombies
    let mut z = Vec::new();
    for pid in &out.adopted_zombies {
        z.push(format!("{} had exited but was never reaped: it was still a zombie when main exited — main must wait (waitpid) for it", who(*pid, &secondary)));
    }
    for (pid, d, samples) in &out.lingered {
        z.push(format!(
            "{} stayed a zombie for at least {} ms while main ran ({} samples; allowed {} ms): wait for a child as soon as it exits",
            who(*pid, &secondary),
            d.as_millis(),
            samples,
            c.zombie_grace_ms
        ));
    }
    add(
        "no-zombies",
        z.is_empty(),
        false,
        if z.is_empty() {
            "no process stayed a zombie".into()
        } else {
            z.join("; ")
        },
    );

    // shutdown-order
    if to {
        add("shutdown-order", false, true, skip_to.clone());
    } else if secondary.is_empty() {
        add("shutdown-order", false, false, "no secondary process was seen: main must start it (fork) and the secondary must open the FIFOs".into());
    } else {
        let orphaned: Vec<i32> = secondary
            .iter()
            .copied()
            .filter(|p| out.alive_at_main_end.contains(p))
            .collect();
        if orphaned.is_empty() {
            add(
                "shutdown-order",
                true,
                false,
                "the secondary ended before main".into(),
            );
        } else {
            let list: Vec<String> = orphaned.iter().map(|p| p.to_string()).collect();
            add("shutdown-order", false, false, format!(
                "the secondary (pid {}) was still running when main exited: it was orphaned — main must wait for it before exiting",
                list.join(", ")
            ));
        }
    }

    // no-leftover-processes
    if to {
        add("no-leftover-processes", false, true, skip_to.clone());
    } else if out.killed.is_empty() {
        add(
            "no-leftover-processes",
            true,
            false,
            "nothing was left running".into(),
        );
    } else {
        let list: Vec<String> = out
            .killed
            .iter()
            .map(|(p, why)| format!("pid {p} {why}"))
            .collect();
        add(
            "no-leftover-processes",
            false,
            false,
            format!(
                "{}: every process must end before main does (the grader killed it)",
                list.join("; ")
            ),
        );
    }

    // no-leaked-files
    if to {
        add("no-leaked-files", false, true, skip_to.clone());
        let mut d = stuck_detail(&lines, &expected, timeout_s);
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
        add("timeout", false, false, d);
        return checks;
    }
    let left: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if left.is_empty() {
        add("no-leaked-files", true, false, "DIR is empty".into());
    } else {
        let mut left = left;
        left.sort();
        add(
            "no-leaked-files",
            false,
            false,
            format!(
                "DIR still holds {}: remove the FIFOs before exiting",
                left.join(", ")
            ),
        );
    }

    add(
        "timeout",
        true,
        false,
        format!(
            "main exited after {:.2} s",
            out.main_end.map(|d| d.as_secs_f64()).unwrap_or(0.0)
        ),
    );
    checks
}

fn add_protocol(
    add: &mut impl FnMut(&str, bool, bool, String),
    lines: &[&str],
    expected: &[String],
    out: &Outcome,
) {
    for (i, want) in expected.iter().enumerate() {
        match lines.get(i) {
            Some(got) if got == want => {}
            Some(got) => {
                add(
                    "protocol",
                    false,
                    false,
                    format!("line {}: expected {want:?}, got {got:?}", i + 1),
                );
                return;
            }
            None => {
                let after = if i == 0 {
                    "nothing was printed".to_string()
                } else {
                    format!("the output stopped after {:?}", expected[i - 1])
                };
                add(
                    "protocol",
                    false,
                    false,
                    format!("{after}; {want:?} never came"),
                );
                return;
            }
        }
    }
    if let Some(extra) = lines.get(expected.len()) {
        add(
            "protocol",
            false,
            false,
            format!(
                "line {}: unexpected extra line {extra:?} (stdout must hold only ping i / pong i)",
                expected.len() + 1
            ),
        );
    } else if out.stdout_bytes
        > out
            .stdout_lines
            .iter()
            .map(|(_, l)| l.len() + 1)
            .sum::<usize>()
    {
        add(
            "protocol",
            false,
            false,
            format!("stdout went over the {} bytes kept", out.stdout_bytes),
        );
    } else {
        add(
            "protocol",
            true,
            false,
            format!("{} lines, as expected", expected.len()),
        );
    }
}

fn stuck_detail(lines: &[&str], expected: &[String], timeout_s: f64) -> String {
    let done = lines
        .iter()
        .zip(expected)
        .take_while(|(a, b)| *a == b)
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
fn descendants_of(out: &Outcome, main: i32) -> BTreeSet<i32> {
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

/// The contract's secondary: the descendant(s) of main seen holding files of DIR; failing that
/// evidence, main's direct children.
fn secondary(out: &Outcome, main: i32, desc: &BTreeSet<i32>) -> Vec<i32> {
    let holders: Vec<i32> = desc
        .iter()
        .copied()
        .filter(|p| out.procs.get(p).is_some_and(|x| !x.held.is_empty()))
        .collect();
    if !holders.is_empty() {
        return holders;
    }
    out.procs
        .values()
        .filter(|p| p.parent == main && p.pid != main)
        .map(|p| p.pid)
        .collect()
}

fn who(pid: i32, secondary: &[i32]) -> String {
    if secondary.contains(&pid) {
        format!("the secondary (pid {pid})")
    } else {
        format!("process {pid}")
    }
}

fn named_pipes(out: &Outcome, main: i32, secondary: &[i32]) -> (bool, String) {
    let mut fifos: Vec<String> = Vec::new();
    let mut other: Vec<String> = Vec::new();
    for e in &out.dir_events {
        if let DirEvent::Created { name, fifo } = e {
            match fifo {
                Some(true) => fifos.push(name.clone()),
                // Gone before we could look: a FIFO if anything opened it both ways.
                None if both_ways(out, name) => fifos.push(name.clone()),
                _ => other.push(name.clone()),
            }
        }
    }
    fifos.sort();
    fifos.dedup();
    if fifos.len() < 2 {
        let what = if fifos.is_empty() {
            "no FIFO was created in DIR".to_string()
        } else {
            format!("only one FIFO ({}) was created in DIR", fifos[0])
        };
        return (
            false,
            format!(
                "{what}: create two with mkfifo (plain files do not count{})",
                if other.is_empty() {
                    String::new()
                } else {
                    format!("; seen: {}", other.join(", "))
                }
            ),
        );
    }
    let opened: Vec<&String> = fifos
        .iter()
        .filter(|f| {
            out.dir_events
                .iter()
                .any(|e| matches!(e, DirEvent::Opened { name } if name == *f))
        })
        .collect();
    if opened.len() < 2 {
        return (
            false,
            "no process opened the FIFOs in DIR: the messages must go through them".into(),
        );
    }
    let held_by = |pid: i32| {
        out.procs
            .get(&pid)
            .is_some_and(|p| p.held.iter().any(|h| fifos.contains(h)))
    };
    let main_held = held_by(main);
    let sec_held = secondary.iter().any(|p| held_by(*p));
    let two_way = opened.iter().filter(|f| both_ways(out, f)).count() >= 2;
    match (main_held, sec_held) {
        (true, true) => (
            true,
            format!("{} opened by main and the secondary", fifos.join(" and ")),
        ),
        (false, false) if two_way => (
            true,
            format!(
                "{} each opened for reading and for writing",
                fifos.join(" and ")
            ),
        ),
        (true, false) if two_way && secondary.is_empty() => (
            false,
            "only main opened the FIFOs: the secondary must open them".into(),
        ),
        (true, false) if !two_way => (
            false,
            "only main opened the FIFOs: the secondary must open them".into(),
        ),
        (false, true) if !two_way => (
            false,
            "main never opened the FIFOs: main sends the pings through one of them".into(),
        ),
        _ => (
            true,
            format!(
                "{} each opened for reading and for writing",
                fifos.join(" and ")
            ),
        ),
    }
}

fn both_ways(out: &Outcome, name: &str) -> bool {
    let w = out
        .dir_events
        .iter()
        .any(|e| matches!(e, DirEvent::ClosedWrite { name: n } if n == name));
    let r = out
        .dir_events
        .iter()
        .any(|e| matches!(e, DirEvent::ClosedNoWrite { name: n } if n == name));
    w && r
}
