//! Lab 4's contract, judged. The implementation plays the dispatcher and the workers, started by
//! the reference watchdog (main here) as `IMPL dispatcher --workers K --dir DIR` and `IMPL worker
//! --id I --dir DIR --work-ms W`; the grader is every client (`client.rs`), its phases driven by
//! `driver.rs`; the judge reads what they saw.

use super::client::Answer;
pub use super::driver::{Driver, Seen};
use crate::grade::checks::{Checks, SKIP_TIMEOUT};
use crate::grade::harness::Outcome;
use crate::grade::report::Check;
use crate::spec::Contract;
use std::path::Path;

pub fn judge(out: &Outcome, seen: &Seen, dir: &Path, c: &Contract, timeout_s: f64) -> Vec<Check> {
    let mut k = Checks::new(c, out);
    let warm = match &seen.warmup {
        Some(Ok(())) => None,
        Some(Err(e)) => Some(format!(
            "not judged: {e}{}",
            crate::grade::checks::stderr_tail(out)
        )),
        None if out.timed_out => Some(SKIP_TIMEOUT.to_string()),
        None => Some(format!(
            "not judged: the watchdog ended ({}) before any client was served",
            out.main_status
                .map(|s| crate::process::describe(&s))
                .unwrap_or("?".into())
        )),
    };
    let phase = |k: &mut Checks, name: &str, r: Option<Result<String, String>>| match (r, &warm) {
        (Some(Ok(d)), _) => k.add(name, true, d),
        (Some(Err(d)), _) => k.add(name, false, d),
        (None, Some(w)) => k.add(name, false, w.clone()),
        (None, None) if out.timed_out => k.skip(name, SKIP_TIMEOUT),
        (None, None) => k.add(
            name,
            false,
            "not reached: the watchdog ended before this phase",
        ),
    };
    let crowd = seen.crowd.as_ref().map(|all| {
        let served = all
            .iter()
            .filter(|d| matches!(d.answer, Answer::Served { .. }))
            .count();
        let busy = all.iter().filter(|d| d.answer == Answer::Busy).count();
        let bad: Vec<String> = all
            .iter()
            .enumerate()
            .filter(|(_, d)| !d.answer.ok())
            .take(3)
            .map(|(i, d)| format!("client {i}: {}", d.answer))
            .collect();
        let n = all.len();
        let unclosed = all.iter().filter_map(|d| d.unclosed.as_ref()).collect::<Vec<_>>();
        if let Some(first) = unclosed.first() {
            return Err(format!(
                "{n} concurrent clients: {} of the {served} served saw no end of their connection; e.g. {first}",
                unclosed.len()
            ));
        }
        if bad.is_empty() && served > 0 {
            Ok(format!(
                "{n} concurrent clients: {served} served, {busy} told BUSY"
            ))
        } else if bad.is_empty() {
            Err(format!(
                "{n} concurrent clients: none served, all told BUSY"
            ))
        } else {
            Err(format!(
                "{n} concurrent clients: {served} served, {busy} told BUSY, {} neither; {}",
                n - served - busy,
                bad.join("; ")
            ))
        }
    });
    phase(&mut k, "all-clients-served", crowd);
    phase(&mut k, "busy-reply", seen.busy.clone());
    let mal = seen.malformed.as_ref().map(|cases| {
        let mut bad: Vec<String> = cases
            .iter()
            .filter_map(|(what, r)| r.as_ref().err().map(|e| format!("{what}: {e}")))
            .collect();
        if !seen.malformed_exits.is_empty() {
            let pids: Vec<String> = seen.malformed_exits.iter().map(|p| p.to_string()).collect();
            bad.push(format!(
                "server pid {} exited meanwhile: a bad frame must get an ERR reply, never end a server",
                pids.join(", ")
            ));
        }
        match &seen.malformed_after {
            Some(Answer::Served { .. }) => {}
            Some(other) => bad.push(format!("a normal client afterwards got {other}")),
            None => bad.push("no normal client was tried afterwards".into()),
        }
        if bad.is_empty() {
            Ok(format!(
                "{} bad frames answered ERR or closed; no server ended; a normal client served after them",
                cases.len()
            ))
        } else {
            Err(bad.join("; "))
        }
    });
    phase(&mut k, "malformed-request", mal);
    phase(&mut k, "worker-crash", seen.crash.clone());
    // The hygiene checks judge the student's servers; if no client ever reached one, those
    // never did their job and there is nothing to judge (an empty program scores nothing).
    if !matches!(seen.warmup, Some(Ok(()))) && !out.timed_out {
        let why = "skipped: no client was ever served, so the servers did nothing to judge";
        for name in [
            "no-zombies",
            "no-leftover-processes",
            "no-leaked-files",
            "timeout",
        ] {
            k.skip(name, why);
        }
        return k.list;
    }
    k.no_zombies(out, &[], "process");
    k.no_leftover(out);
    k.no_leaked_files(
        out,
        dir,
        "each server removes its socket path when it ends (SIGTERM)",
        false,
    );
    k.timeout(
        out,
        format!(
            "the watchdog and its servers did not end within {timeout_s} s ({})",
            match seen.term_at {
                Some(d) => format!("SIGTERM sent at {} ms", d.as_millis()),
                None => "before the grader sent SIGTERM".into(),
            }
        ),
    );
    k.list
}
