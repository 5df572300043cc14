//! Starting main in its box: the gate's records from the child between fork and exec.

use super::*;

pub(super) enum GateRecord {
    /// The box is ready (namespaces made); main's pid as we see it when it is not our child
    /// (a normal user's PID namespace), else 0.
    Ready(i32),
    /// A step of the setup failed with this errno.
    Failed(u32, Errno),
    /// The child ended (or stopped at its exit) without a record: killed before exec.
    Died(String),
    /// End of file: execve succeeded (the gate is close-on-exec).
    Closed,
}

/// Reads one record, never blocking on a child that can no longer write: between polls the
/// child's state is checked, so a child that died (and, traced, stopped at its exit event while
/// still holding the gate) is noticed instead of waited for.
pub(super) fn read_gate(gate: &std::fs::File, child: Pid) -> GateRecord {
    let mut rec = [0u8; 8];
    let mut got = 0;
    loop {
        let ready = crate::signals::poll_fds(&[gate.as_fd()], Some(Duration::from_millis(50)))
            .map(|r| r.first() == Some(&true))
            .unwrap_or(false);
        if ready {
            match (&*gate).read(&mut rec[got..]) {
                Ok(0) if got == 0 => return GateRecord::Closed,
                Ok(0) => return GateRecord::Died("cut its gate record short".into()),
                Ok(n) => {
                    got += n;
                    if got == rec.len() {
                        let step = u32::from_ne_bytes([rec[0], rec[1], rec[2], rec[3]]);
                        let e = i32::from_ne_bytes([rec[4], rec[5], rec[6], rec[7]]);
                        return if step == 0 {
                            GateRecord::Ready(e)
                        } else {
                            GateRecord::Failed(step, Errno::from_raw(e))
                        };
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return GateRecord::Died(format!("left an unreadable gate ({e})")),
            }
            continue;
        }
        match waitpid(child, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(WaitStatus::PtraceEvent(_, _, libc::PTRACE_EVENT_EXIT)) => {
                return GateRecord::Died("was killed".into())
            }
            Ok(WaitStatus::Exited(_, c)) => return GateRecord::Died(format!("exited {c}")),
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                return GateRecord::Died(format!("was killed by {sig}"))
            }
            // A signal-delivery stop of the seized child: deliver it as if we were not there.
            Ok(WaitStatus::Stopped(pid, sig)) => {
                let _ = ptrace::cont(pid, Some(sig));
            }
            Ok(_) => {
                let _ = ptrace::cont(child, None);
            }
            Err(Errno::EINTR) => {}
            Err(e) => return GateRecord::Died(format!("could not be waited for ({e})")),
        }
    }
}

/// Waits until `child` is gone, resuming it through ptrace stops (SIGKILL was sent).
pub(super) fn reap_one(child: Pid) {
    loop {
        match waitpid(child, Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) | Err(Errno::ECHILD) => break,
            Err(Errno::EINTR) => continue,
            Err(_) => break,
            Ok(WaitStatus::Stopped(pid, sig)) => {
                let _ = ptrace::cont(pid, Some(sig));
            }
            Ok(_) => {
                let _ = ptrace::cont(child, None);
            }
        }
    }
}

/// One line naming the step that failed before exec, with what the grader can advise.
pub(super) fn setup_failure(l: &Launch, step: u32, e: Errno) -> String {
    let name = crate::sandbox::STEPS
        .get(step as usize)
        .copied()
        .unwrap_or("setup");
    let who = match l.run_as {
        Some((u, _)) => tf!(" as uid {u}", " sous l'uid {u}"),
        None => String::new(),
    };
    if name == "execve" {
        let hint = match l.run_as {
            Some((u, _)) if matches!(e, Errno::EACCES | Errno::ENOENT) => tf!(
                ": uid {u} cannot reach it (or the interpreter its #! names); put the program where \
                 every user can read and execute it, and name an interpreter such as \
                 /usr/bin/python3, not one under a private home",
                " : l'uid {u} ne peut pas l'atteindre (ou l'interpréteur que nomme son #!) ; mettez \
                 le programme là où tout utilisateur peut le lire et l'exécuter, et nommez un \
                 interpréteur comme /usr/bin/python3, pas un interpréteur d'un répertoire \
                 personnel privé"
            ),
            _ => String::new(),
        };
        return tf!(
            "cannot exec {}{who}: {e:?} ({}){hint}",
            "exec de {} impossible{who} : {e:?} ({}){hint}",
            l.program.display(),
            e.desc()
        );
    }
    tf!(
        "the box could not be built: {name} failed{who}: {e:?} ({})",
        "la boîte n'a pas pu être construite : échec de {name}{who} : {e:?} ({})",
        e.desc()
    )
}

/// RLIMIT_NPROC for the uid the implementation runs as: what that uid runs now plus the bound.
/// It does not bind root, hence the uid drop when grading as root.
pub(super) fn nproc_bound(l: &Launch) -> Option<u64> {
    let uid = l
        .run_as
        .map(|(u, _)| u)
        .unwrap_or_else(|| nix::unistd::getuid().as_raw());
    if uid == 0 {
        return None;
    }
    let count = crate::sandbox::process_uids()
        .iter()
        .filter(|(_, u)| *u == uid)
        .count() as u64;
    Some(count + l.max_procs)
}
