//! Lab 5's contract, judged: `IMPL --children M` (see labs/lab5-zombies/README.md).

use crate::grade::checks::{self, Checks, Role};
use crate::grade::harness::Outcome;
use crate::grade::report::Check;
use crate::spec::Contract;

pub fn judge(out: &Outcome, m: u64, c: &Contract, timeout_s: f64) -> Vec<Check> {
    let main = out.main_pid;
    let mut k = Checks::new(c, out);
    let expected: Vec<String> = (1..=m)
        .map(|i| format!("child {i} exited with status {i}"))
        .collect();
    let children = checks::children_of(out, main);
    k.role(&children, Role::CHILD);

    k.exit_status(out);
    if out.timed_out {
        k.skip("protocol", checks::skip_timeout());
    } else {
        // Any order: children die together, and are reaped in whatever order waitpid returns them.
        let mut got: Vec<&str> = out.stdout_lines.iter().map(|(_, l)| l.as_str()).collect();
        got.sort();
        let mut want: Vec<&str> = expected.iter().map(|s| s.as_str()).collect();
        want.sort();
        let missing: Vec<&&str> = want.iter().filter(|w| !got.contains(w)).collect();
        let extra: Vec<&&str> = got.iter().filter(|g| !want.contains(g)).collect();
        let twice = got.windows(2).find(|w| w[0] == w[1]).map(|w| w[0]);
        if got == want {
            k.add(
                "protocol",
                true,
                tf!("{m} lines, one per child", "{m} lignes, une par enfant"),
            );
        } else if let Some(x) = twice {
            k.add("protocol", false, tf!("{x:?} was printed more than once: one line per reaped child (print after waitpid returns it, once)", "{x:?} a été écrite plus d'une fois : une ligne par enfant récupéré (écrivez-la une fois, quand waitpid le rend)"));
        } else if let Some(x) = extra.first() {
            k.add("protocol", false, tf!("unexpected line {x:?}: print exactly one `child i exited with status i` per reaped child", "ligne inattendue {x:?} : écrivez exactement une ligne `child i exited with status i` par enfant récupéré"));
        } else {
            k.add(
                "protocol",
                false,
                tf!(
                    "{} of {m} children never reported, e.g. {:?}",
                    "{} enfant(s) sur {m} jamais signalé(s), par exemple {:?}",
                    missing.len(),
                    missing.first().map(|s| **s).unwrap_or("")
                ),
            );
        }
    }
    let exited = children
        .iter()
        .filter(|p| out.procs.get(p).is_some_and(|x| x.exited.is_some()))
        .count();
    if children.len() as u64 == m && exited as u64 == m {
        k.add(
            "children",
            true,
            tf!(
                "main forked {m} children, all exited",
                "main a créé {m} enfants (fork), tous ont fini"
            ),
        );
    } else {
        k.add(
            "children",
            false,
            tf!(
                "main forked {} children ({exited} exited); the contract asks for {m}",
                "main a créé {} enfant(s) (fork) ({exited} fini(s)) ; le contrat en demande {m}",
                children.len()
            ),
        );
    }
    k.no_zombies(out, &children, Role::CHILD);
    k.shutdown_order(out, &children, Role::CHILDREN);
    k.no_leftover(out);
    let any = |_: usize, l: &str| expected.iter().any(|e| e == l);
    k.timeout(out, checks::stuck(out, &expected, timeout_s, any));
    k.list
}
