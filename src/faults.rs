//! Seeded fault schedules on namespace hosts: a plan of pauses (SIGSTOP, then SIGCONT), crashes
//! (SIGKILL), restarts (a crash, then each program started again as the course's launcher does,
//! `ssh HOST "cd DIR; PROG ARGS"`) and partitions (a host cut off from the others, then healed),
//! drawn from a seed so
//! the same seed gives the same plan, written as JSON lines so a plan can be replayed exactly
//! (`--replay FILE`), and each fault applied recorded with when it happened and whom it hit.
//!
//! A host's processes are those in its PID namespace but its sshd (the namespace's init) and
//! sshd's sessions: what the student started there.

use crate::error::{Error, Result};
use crate::hosts::{Cluster, Host};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Pause,
    Crash,
    Partition,
    Restart,
}

/// One fault of a plan: at `at_ms` after the start, on `host`, for `ms` (pause, partition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub at_ms: u64,
    pub host: String,
    pub kind: Kind,
    #[serde(default)]
    pub ms: u64,
}

/// `count` faults from `seed`, one every `gap_ms` on average (between half and one and a half
/// of it), each on a host and of a kind drawn from those given; a pause or a partition lasts
/// a quarter to a half of the gap, so it has ended before the next fault.
pub fn plan(seed: u64, hosts: &[String], kinds: &[Kind], count: usize, gap_ms: u64) -> Vec<Fault> {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let gap = gap_ms.max(4);
    let mut at = 0;
    let mut out = Vec::new();
    if hosts.is_empty() || kinds.is_empty() {
        return out;
    }
    for _ in 0..count {
        at += rng.random_range(gap / 2..=gap + gap / 2);
        let host = hosts[rng.random_range(0..hosts.len())].clone();
        let kind = kinds[rng.random_range(0..kinds.len())];
        let ms = match kind {
            Kind::Crash => 0,
            Kind::Pause | Kind::Partition | Kind::Restart => {
                rng.random_range(gap / 4..=gap / 2 - 1)
            }
        };
        out.push(Fault {
            at_ms: at,
            host,
            kind,
            ms,
        });
    }
    out
}

/// A plan from its JSON lines (what `--plan-only` printed, or a record's `fault` fields).
pub fn read_plan(text: &str) -> Result<Vec<Fault>> {
    let mut plan: Vec<Fault> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Fault = serde_json::from_str(line)
            .map_err(|e| Error::usage(format!("plan line {}: {e}", i + 1)))?;
        if plan.last().is_some_and(|p| p.at_ms + p.ms > f.at_ms) {
            return Err(Error::usage(format!(
                "plan line {}: at_ms {} comes before the previous fault has ended",
                i + 1,
                f.at_ms
            )));
        }
        plan.push(f);
    }
    Ok(plan)
}

/// What happened: the fault, which edge of it (`start` and `end` for a pause or a partition,
/// `done` for a crash, `killed` then `started` for a restart), when (ms after the plan's start,
/// to 0.1 ms), the pids it hit or started (as the machine numbers them).
#[derive(Debug, Serialize)]
pub struct Applied<'a> {
    pub fault: &'a Fault,
    pub phase: &'static str,
    pub t_ms: f64,
    pub pids: Vec<i32>,
}

/// A program started on a host: the argv and directory to start it again with.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    pub argv: Vec<String>,
    pub cwd: std::path::PathBuf,
}

/// The programs of `pids` that the others did not start (their parent is sshd, or the host's
/// init): what a restart starts again; their children are theirs to start.
pub fn leaders(pids: &[i32]) -> Vec<Program> {
    pids.iter()
        .filter_map(|p| {
            let info = crate::inspect::info(*p)?;
            if pids.contains(&info.ppid) {
                return None;
            }
            let raw = std::fs::read(format!("/proc/{p}/cmdline")).ok()?;
            let argv: Vec<String> = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let cwd = std::fs::read_link(format!("/proc/{p}/cwd")).ok()?;
            (!argv.is_empty()).then_some(Program { argv, cwd })
        })
        .collect()
}

/// Starts `prog` on `host` again the way the course does, over ssh from the host itself, in
/// the background (its output to /dev/null: the first run's redirections are not known).
fn relaunch(c: &Cluster, host: &str, prog: &Program) -> Result<()> {
    let q = |s: &str| {
        shlex::try_quote(s)
            .map(|c| c.into_owned())
            .map_err(|_| Error::runtime(format!("restart on {host}: {s:?} cannot be quoted")))
    };
    let argv = prog.argv.iter().map(|a| q(a)).collect::<Result<Vec<_>>>()?;
    let line = format!(
        "cd {} && {} </dev/null >/dev/null 2>&1 &",
        q(&prog.cwd.to_string_lossy())?,
        argv.join(" ")
    );
    let ssh = ["ssh", "-o", "BatchMode=yes", host, &line].map(String::from);
    let out = c
        .exec(host, &ssh)?
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::io(&e, "exec", "ssh"))?;
    if !out.status.success() {
        return Err(Error::runtime(format!(
            "restart on {host}: ssh said {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The student's processes on `h`: every process in its PID namespace but sshd's own.
pub fn processes(h: &Host) -> Vec<i32> {
    let Some(init) = h.sshd_pid() else {
        return Vec::new();
    };
    let Ok(ns) = std::fs::read_link(format!("/proc/{init}/ns/pid")) else {
        return Vec::new();
    };
    crate::inspect::all()
        .into_iter()
        .filter(|p| !p.is_zombie() && !p.comm.starts_with("sshd"))
        .filter(|p| std::fs::read_link(format!("/proc/{}/ns/pid", p.pid)).is_ok_and(|n| n == ns))
        .map(|p| p.pid)
        .collect()
}

fn signal_all(pids: &[i32], sig: Signal) {
    for p in pids {
        // One that ended meanwhile is simply gone.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), sig);
    }
}

/// Waits `d` on the plan's clock (what is scheduled, not a handshake), or until SIGINT, SIGTERM
/// or SIGHUP: then the error that ends the run, exit status 128 + the signal.
fn hold(sigs: &mut crate::signals::SignalPipe, d: Duration) -> Result<()> {
    match sigs.wait(Some(d))?.first() {
        None => Ok(()),
        Some(sig) => Err(Error::runtime(format!(
            "{} received: the plan stopped, the fault under way undone",
            sig.as_str()
        ))
        .with_code(128 + *sig as i32)),
    }
}

/// Applies the plan on the live hosts, in order and on time, calling `record` at each edge of
/// each fault. On an error or an interrupt (SIGINT, SIGTERM, SIGHUP), a paused host is
/// continued and a cut healed before it is returned: nothing stays stopped or cut.
pub fn run(c: &Cluster, plan: &[Fault], record: &mut dyn FnMut(&Applied)) -> Result<()> {
    for f in plan {
        c.host(&f.host)?;
    }
    let mut sigs =
        crate::signals::SignalPipe::new(&[Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP])?;
    let t0 = Instant::now();
    let mut edge = |f: &Fault, phase, pids: &[i32]| {
        let t_ms = (t0.elapsed().as_secs_f64() * 1e4).round() / 10.0;
        record(&Applied {
            fault: f,
            phase,
            t_ms,
            pids: pids.to_vec(),
        });
    };
    for f in plan {
        // The plan's clock: each fault waits for its time.
        let due = t0 + Duration::from_millis(f.at_ms);
        if let Some(left) = due.checked_duration_since(Instant::now()) {
            hold(&mut sigs, left)?;
        }
        let h = c.host(&f.host)?;
        let last = Duration::from_millis(f.ms);
        match f.kind {
            Kind::Crash => {
                let pids = processes(h);
                signal_all(&pids, Signal::SIGKILL);
                edge(f, "done", &pids);
            }
            Kind::Pause => {
                let pids = processes(h);
                signal_all(&pids, Signal::SIGSTOP);
                edge(f, "start", &pids);
                let held = hold(&mut sigs, last);
                signal_all(&pids, Signal::SIGCONT);
                edge(f, "end", &pids);
                held?;
            }
            Kind::Restart => {
                let pids = processes(h);
                let progs = leaders(&pids);
                signal_all(&pids, Signal::SIGKILL);
                edge(f, "killed", &pids);
                // Interrupted or not, what was killed is started again.
                let held = hold(&mut sigs, last);
                for p in &progs {
                    relaunch(c, &f.host, p)?;
                }
                let now: Vec<i32> = processes(h)
                    .into_iter()
                    .filter(|p| !pids.contains(p))
                    .collect();
                edge(f, "started", &now);
                held?;
            }
            Kind::Partition => {
                let others: Vec<String> = c.names().into_iter().filter(|n| *n != f.host).collect();
                if let Err(e) = c.partition(std::slice::from_ref(&f.host), &others) {
                    let _ = c.heal();
                    return Err(e);
                }
                edge(f, "start", &[]);
                let held = hold(&mut sigs, last);
                c.heal()?;
                edge(f, "end", &[]);
                held?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> Vec<String> {
        ["h1", "h2", "h3"].map(String::from).to_vec()
    }

    #[test]
    fn the_same_seed_gives_the_same_plan() {
        let all = [Kind::Pause, Kind::Crash, Kind::Partition, Kind::Restart];
        let a = plan(7, &hosts(), &all, 20, 1000);
        assert_eq!(a, plan(7, &hosts(), &all, 20, 1000));
        assert_ne!(a, plan(8, &hosts(), &all, 20, 1000));
        // Each fault has ended before the next begins, and every kind and host is drawn.
        for w in a.windows(2) {
            assert!(w[0].at_ms + w[0].ms < w[1].at_ms, "{w:?}");
        }
        for k in all {
            assert!(a.iter().any(|f| f.kind == k), "{k:?} never drawn");
        }
        assert!(hosts().iter().all(|h| a.iter().any(|f| f.host == *h)));
        assert!(a.iter().all(|f| (f.kind == Kind::Crash) == (f.ms == 0)));
    }

    #[test]
    fn a_plan_reads_back_and_bad_lines_are_named() {
        let p = plan(3, &hosts(), &[Kind::Pause, Kind::Crash], 5, 500);
        let text: String = p
            .iter()
            .map(|f| serde_json::to_string(f).unwrap() + "\n")
            .collect();
        assert_eq!(read_plan(&text).unwrap(), p);
        let e = read_plan("{\"at_ms\":1,\"host\":\"h1\",\"kind\":\"melt\"}").unwrap_err();
        assert!(e.to_string().contains("plan line 1"), "{e}");
        let overlap = "{\"at_ms\":10,\"host\":\"h1\",\"kind\":\"pause\",\"ms\":50}\n\
                       {\"at_ms\":20,\"host\":\"h2\",\"kind\":\"crash\"}";
        assert!(read_plan(overlap)
            .unwrap_err()
            .to_string()
            .contains("line 2"));
    }
}
