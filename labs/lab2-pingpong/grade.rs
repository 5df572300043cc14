//! Lab 2's contract, judged: `IMPL --exchanges N --dir DIR` (see labs/lab2-pingpong/README.md).

use crate::grade::checks::{self, Checks, Role};
use crate::grade::harness::{DirEvent, Outcome};
use crate::grade::report::Check;
use crate::spec::Contract;
use std::path::Path;

pub fn judge(out: &Outcome, n: u64, dir: &Path, c: &Contract, timeout_s: f64) -> Vec<Check> {
    let main = out.main_pid;
    let mut k = Checks::new(c, out);
    let expected: Vec<String> = (1..=n)
        .flat_map(|i| [format!("ping {i}"), format!("pong {i}")])
        .collect();
    let exact = |i: usize, l: &str| l == expected[i];
    let secondary = checks::holders_or_children(out, main);
    k.role(&secondary, Role::SECONDARY);

    k.exit_status(out);
    if out.timed_out {
        k.skip("protocol", checks::skip_timeout());
    } else {
        match checks::protocol(out, &expected, exact) {
            Ok(d) => k.add("protocol", true, d),
            Err(d) => k.add(
                "protocol",
                false,
                tf!(
                    "{d} (stdout must hold only ping i / pong i)",
                    "{d} (stdout ne doit contenir que ping i / pong i)"
                ),
            ),
        }
    }
    let (ok, detail) = named_pipes(out, main, &secondary);
    k.add("named-pipes", ok, detail);
    k.no_zombies(out, &secondary, Role::SECONDARY);
    k.shutdown_order(out, &secondary, Role::SECONDARY);
    k.no_leftover(out);
    k.no_leaked_files(
        out,
        dir,
        &tf!(
            "remove the FIFOs before exiting",
            "supprimez les FIFO avant de finir"
        ),
        true,
    );
    k.timeout(out, checks::stuck(out, &expected, timeout_s, exact));
    k.list
}

fn named_pipes(out: &Outcome, main: i32, secondary: &[i32]) -> (bool, String) {
    let mut fifos: Vec<String> = Vec::new();
    let mut other: Vec<String> = Vec::new();
    for e in &out.dir_events {
        if let DirEvent::Created { name, fifo } = e {
            match fifo {
                Some(true) => fifos.push(name.clone()),
                // Gone before we could look: a FIFO if something opened it both ways.
                None if both_ways(out, name) => fifos.push(name.clone()),
                _ => other.push(name.clone()),
            }
        }
    }
    fifos.sort();
    fifos.dedup();
    if fifos.len() < 2 {
        let what = if fifos.is_empty() {
            tf!(
                "no FIFO was created in DIR",
                "aucun FIFO n'a été créé dans DIR"
            )
        } else {
            tf!(
                "only one FIFO ({}) was created in DIR",
                "un seul FIFO ({}) a été créé dans DIR",
                fifos[0]
            )
        };
        let seen = if other.is_empty() {
            String::new()
        } else {
            tf!("; seen: {}", " ; vus : {}", other.join(", "))
        };
        return (
            false,
            tf!("{what}: create two with mkfifo (plain files do not count{seen})", "{what} : créez-en deux avec mkfifo (les fichiers ordinaires ne comptent pas{seen})"),
        );
    }
    let opened = fifos
        .iter()
        .filter(|f| {
            out.dir_events
                .iter()
                .any(|e| matches!(e, DirEvent::Opened { name } if name == *f))
        })
        .count();
    if opened < 2 && out.timed_out && !out.blocked.is_empty() {
        return (
            false,
            tf!("{} created in DIR, but no open of them completed before the time limit (see timeout: where each process was blocked)", "{} créés dans DIR, mais aucune de leurs ouvertures n'a abouti avant la limite de temps (voir timeout : où chaque processus était bloqué)",
                fifos.join(crate::lang::and())
            ),
        );
    }
    if opened < 2 {
        return (
            false,
            tf!(
                "no process opened the FIFOs in DIR: the messages must go through them",
                "aucun processus n'a ouvert les FIFO de DIR : les messages doivent passer par eux"
            ),
        );
    }
    let held_by = |pid: i32| {
        out.procs
            .get(&pid)
            .is_some_and(|p| p.held.iter().any(|h| fifos.contains(h)))
    };
    let two_way = fifos.iter().filter(|f| both_ways(out, f)).count() >= 2;
    match (held_by(main), secondary.iter().any(|p| held_by(*p))) {
        (true, true) => (
            true,
            tf!(
                "{} opened by main and the secondary",
                "{} ouverts par main et par le secondaire",
                fifos.join(crate::lang::and())
            ),
        ),
        (true, false) if !two_way => (
            false,
            tf!(
                "only main opened the FIFOs: the secondary must open them",
                "seul main a ouvert les FIFO : le secondaire doit les ouvrir"
            ),
        ),
        (false, true) if !two_way => (
            false,
            tf!(
                "main never opened the FIFOs: main sends the pings through one of them",
                "main n'a jamais ouvert les FIFO : main envoie les ping par l'un d'eux"
            ),
        ),
        // Sampling can miss a short-lived opener; inotify saw both directions.
        _ => (
            true,
            tf!(
                "{} each opened for reading and for writing",
                "{} ouverts chacun en lecture et en écriture",
                fifos.join(crate::lang::and())
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
