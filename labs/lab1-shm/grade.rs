//! Lab 1's contract, judged: `IMPL --messages K --name-prefix P` (see labs/lab1-shm/README.md).

use crate::grade::checks::{self, Checks, Role};
use crate::grade::harness::{DirEvent, Outcome};
use crate::grade::report::Check;
use crate::spec::Contract;
use std::collections::BTreeMap;

pub fn judge(
    out: &Outcome,
    params: &BTreeMap<String, u64>,
    prefix: &str,
    leaked: &[String],
    c: &Contract,
    timeout_s: f64,
) -> Vec<Check> {
    let main = out.main_pid;
    let k_msgs = params.get("K").copied().unwrap_or(0);
    let mut k = Checks::new(c, out);
    let expected: Vec<String> = (1..=k_msgs).map(|i| format!("message {i}")).collect();
    // Line i is `message i`, optionally followed by ':' or a space and free text.
    let fits = |i: usize, l: &str| {
        l.strip_prefix(expected[i].as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(':') || rest.starts_with(' '))
    };
    let secondary = checks::holders_or_children(out, main);
    k.role(&secondary, Role::SECONDARY);

    k.exit_status(out);
    if out.timed_out {
        k.skip("protocol", checks::skip_timeout());
    } else {
        match checks::protocol(out, &expected, fits) {
            Ok(d) => k.add("protocol", true, d),
            Err(d) => k.add(
                "protocol",
                false,
                tf!("{d} (stdout must hold only `message i` lines, one per verified answer)", "{d} (stdout ne doit contenir que des lignes `message i`, une par réponse vérifiée)"),
            ),
        }
    }
    let created: Vec<&String> = out
        .dir_events
        .iter()
        .filter_map(|e| match e {
            DirEvent::Created { name, .. } => Some(name),
            _ => None,
        })
        .collect();
    let mapped_by = |pid: i32| out.procs.get(&pid).is_some_and(|p| !p.held.is_empty());
    // A process that opens, maps and unmaps within a few ms can slip between samples; a second
    // open of the segment (inotify) is then the evidence that another process took it.
    let opens = |name: &str| {
        out.dir_events
            .iter()
            .filter(|e| matches!(e, DirEvent::Opened { name: n } if n == name))
            .count()
    };
    let (ok, detail) = if created.is_empty() {
        (false, tf!("no shared-memory object named /{prefix}* was created: shm_open(\"/{prefix}...\", O_CREAT|O_EXCL|O_RDWR, 0600)", "aucun objet de mémoire partagée nommé /{prefix}* n'a été créé : shm_open(\"/{prefix}...\", O_CREAT|O_EXCL|O_RDWR, 0600)"))
    } else if !mapped_by(main) && opens(created[0]) == 0 {
        (
            false,
            tf!(
                "main never mapped {}: mmap it with MAP_SHARED",
                "main n'a jamais projeté {} : projetez-le avec mmap et MAP_SHARED",
                created[0]
            ),
        )
    } else if secondary.iter().any(|p| mapped_by(*p)) {
        (
            true,
            tf!(
                "/dev/shm/{} mapped by main and the secondary",
                "/dev/shm/{} projeté par main et par le secondaire",
                created[0]
            ),
        )
    } else if opens(created[0]) >= 2 {
        (
            true,
            tf!(
                "/dev/shm/{} opened by main and by another process",
                "/dev/shm/{} ouvert par main et par un autre processus",
                created[0]
            ),
        )
    } else {
        (
            false,
            tf!("the secondary never mapped {}: it must open and mmap the same segment", "le secondaire n'a jamais projeté {} : il doit ouvrir et projeter (mmap) le même segment",
                created[0]
            ),
        )
    };
    k.add("shared-memory", ok, detail);
    k.no_zombies(out, &secondary, Role::SECONDARY);
    k.shutdown_order(out, &secondary, Role::SECONDARY);
    k.no_leftover(out);
    if out.timed_out {
        k.skip("no-leaked-shm", checks::skip_timeout());
    } else if created.is_empty() && leaked.is_empty() {
        k.skip(
            "no-leaked-shm",
            &tf!(
                "skipped: no /dev/shm/{prefix}* was ever created, so none could leak",
                "non jugé : aucun /dev/shm/{prefix}* n'a été créé, aucun ne pouvait donc fuir"
            ),
        );
    } else if leaked.is_empty() {
        k.add(
            "no-leaked-shm",
            true,
            tf!(
                "no /dev/shm/{prefix}* left",
                "aucun /dev/shm/{prefix}* ne reste"
            ),
        );
    } else {
        k.add("no-leaked-shm", false, tf!("/dev/shm still holds {}: main must shm_unlink the segment before exiting (the grader removed it)", "/dev/shm contient encore {} : main doit supprimer le segment (shm_unlink) avant de finir (le correcteur l'a supprimé)", leaked.join(", ")));
    }
    k.timeout(out, checks::stuck(out, &expected, timeout_s, fits));
    k.list
}
