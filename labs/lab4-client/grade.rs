//! Lab 4's contract, judged. The implementation plays the dispatcher and the workers, started by
//! the reference watchdog (main here) as `IMPL dispatcher --workers K --dir DIR` and `IMPL worker
//! --id I --dir DIR --work-ms W`; the grader is every client (`client.rs`), its phases driven by
//! `driver.rs`; the judge reads what they saw.

use super::client::Answer;
pub use super::driver::{Driver, Seen};
use crate::grade::checks::{self, Checks, Role};
use crate::grade::harness::Outcome;
use crate::grade::report::Check;
use crate::spec::Contract;
use std::path::Path;

pub fn judge(out: &Outcome, seen: &Seen, dir: &Path, c: &Contract, timeout_s: f64) -> Vec<Check> {
    let mut k = Checks::new(c, out);
    let warm = match &seen.warmup {
        Some(Ok(())) => None,
        Some(Err(e)) => Some(tf!(
            "not judged: {e}{}",
            "non jugé : {e}{}",
            crate::grade::checks::stderr_tail(out)
        )),
        None if out.timed_out => Some(checks::skip_timeout()),
        None => Some(tf!(
            "not judged: the watchdog ended ({}) before any client was served",
            "non jugé : le chien de garde a fini ({}) avant qu'un client soit servi",
            out.main_status
                .map(|s| crate::process::describe(&s))
                .unwrap_or("?".into())
        )),
    };
    let phase = |k: &mut Checks, name: &str, r: Option<Result<String, String>>| match (r, &warm) {
        (Some(Ok(d)), _) => k.add(name, true, d),
        (Some(Err(d)), _) => k.add(name, false, d),
        (None, Some(w)) => k.add(name, false, w.clone()),
        (None, None) if out.timed_out => k.skip(name, checks::skip_timeout()),
        (None, None) => k.add(
            name,
            false,
            tf!(
                "not reached: the watchdog ended before this phase",
                "non atteint : le chien de garde a fini avant cette phase"
            ),
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
            .map(|(i, d)| tf!("client {i}: {}", "client {i} : {}", d.answer))
            .collect();
        let n = all.len();
        let unclosed = all.iter().filter_map(|d| d.unclosed.as_ref()).collect::<Vec<_>>();
        if let Some(first) = unclosed.first() {
            return Err(tf!("{n} concurrent clients: {} of the {served} served saw no end of their connection; e.g. {first}", "{n} clients simultanés : {} des {served} servis n'ont pas vu la fin de leur connexion ; par exemple {first}",
                unclosed.len()
            ));
        }
        if bad.is_empty() && served > 0 {
            Ok(tf!("{n} concurrent clients: {served} served, {busy} told BUSY", "{n} clients simultanés : {served} servis, {busy} ont reçu BUSY"
            ))
        } else if bad.is_empty() {
            Err(tf!("{n} concurrent clients: none served, all told BUSY", "{n} clients simultanés : aucun servi, tous ont reçu BUSY"
            ))
        } else {
            Err(tf!("{n} concurrent clients: {served} served, {busy} told BUSY, {} neither; {}", "{n} clients simultanés : {served} servis, {busy} ont reçu BUSY, {} ni l'un ni l'autre ; {}",
                n - served - busy,
                bad.join(crate::lang::sep())
            ))
        }
    });
    phase(&mut k, "all-clients-served", crowd);
    phase(&mut k, "busy-reply", seen.busy.clone());
    let mal = seen.malformed.as_ref().map(|cases| {
        let mut bad: Vec<String> = cases
            .iter()
            .filter_map(|(what, r)| r.as_ref().err().map(|e| tf!("{what}: {e}", "{what} : {e}")))
            .collect();
        if !seen.malformed_exits.is_empty() {
            let pids: Vec<String> = seen.malformed_exits.iter().map(|p| p.to_string()).collect();
            bad.push(tf!("server pid {} exited meanwhile: a bad frame must get an ERR reply, never end a server", "le serveur de pid {} a fini entre-temps : une trame invalide doit recevoir une réponse ERR, jamais arrêter un serveur",
                pids.join(", ")
            ));
        }
        match &seen.malformed_after {
            Some(Answer::Served { .. }) => {}
            Some(other) => bad.push(tf!("a normal client afterwards got {other}", "ensuite, un client normal : {other}")),
            None => bad.push(tf!("no normal client was tried afterwards", "aucun client normal n'a été essayé ensuite")),
        }
        if bad.is_empty() {
            Ok(tf!("{} bad frames answered ERR or closed; no server ended; a normal client served after them", "{} trames invalides : réponse ERR ou fermeture ; aucun serveur arrêté ; un client normal servi après elles",
                cases.len()
            ))
        } else {
            Err(bad.join(crate::lang::sep()))
        }
    });
    phase(&mut k, "malformed-request", mal);
    phase(&mut k, "worker-crash", seen.crash.clone());
    // The hygiene checks judge the student's servers; if no client ever reached one, those
    // never did their job and there is nothing to judge (an empty program scores nothing).
    if !matches!(seen.warmup, Some(Ok(()))) && !out.timed_out {
        let why = tf!(
            "skipped: no client was ever served, so the servers did nothing to judge",
            "non jugé : aucun client n'a été servi, les serveurs n'ont donc rien fait à juger"
        );
        for name in [
            "no-zombies",
            "no-leftover-processes",
            "no-leaked-files",
            "timeout",
        ] {
            k.skip(name, &why);
        }
        return k.list;
    }
    k.no_zombies(out, &[], Role::PROCESS);
    k.no_leftover(out);
    k.no_leaked_files(
        out,
        dir,
        &tf!(
            "each server removes its socket path when it ends (SIGTERM)",
            "chaque serveur supprime le chemin de sa socket quand il finit (SIGTERM)"
        ),
        false,
    );
    k.timeout(
        out,
        tf!(
            "the watchdog and its servers did not end within {timeout_s} s ({})",
            "le chien de garde et ses serveurs n'ont pas fini en {timeout_s} s ({})",
            match seen.term_at {
                Some(d) => tf!(
                    "SIGTERM sent at {} ms",
                    "SIGTERM envoyé à {} ms",
                    d.as_millis()
                ),
                None => tf!(
                    "before the grader sent SIGTERM",
                    "avant que le correcteur envoie SIGTERM"
                ),
            }
        ),
    );
    k.list
}
