//! Tree tracking: ptrace events and waitpid statuses turned into the processes' lives, with
//! /proc as the fallback where ptrace is refused.

use super::*;

/// Whether `pid` has a signal pending whose default action ends it (SIGTERM, SIGINT...).
pub(super) fn pending_fatal(pid: i32) -> bool {
    let Some(st) = status(pid) else {
        return false;
    };
    let pending = st.sigpnd | st.shdpnd;
    let fatal = [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGALRM,
        Signal::SIGPIPE,
    ]
    .iter()
    .fold(0u64, |m, s| m | 1u64 << (*s as i32 - 1));
    pending & fatal != 0
}

/// The PID-namespace helper of the current run (0: none): our child, not part of the tree.
pub(super) static HELPER: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Our children that belong to the judged tree (the PID-namespace helper does not).
pub(super) fn tree_children(me: i32) -> Vec<crate::inspect::ProcInfo> {
    let h = HELPER.load(std::sync::atomic::Ordering::SeqCst);
    crate::inspect::children(me)
        .into_iter()
        .filter(|p| p.pid != h)
        .collect()
}

/// What the exec gate said.
/// Signals whose default action would end a hung process.
pub(super) fn ends_a_hang(sig: Signal) -> bool {
    !matches!(
        sig,
        Signal::SIGCONT
            | Signal::SIGSTOP
            | Signal::SIGTSTP
            | Signal::SIGTTIN
            | Signal::SIGTTOU
            | Signal::SIGCHLD
            | Signal::SIGWINCH
            | Signal::SIGURG
    )
}

/// One ptrace or wait event.
#[allow(clippy::too_many_arguments)] // the tracker's state, passed apart to stay borrowable
pub(super) fn handle(
    st: WaitStatus,
    t: Duration,
    procs: &mut BTreeMap<i32, Proc>,
    threads: &mut BTreeSet<i32>,
    attached: &mut BTreeSet<i32>,
    resumed: &mut BTreeSet<i32>,
    frozen: &BTreeSet<i32>,
    dir: Option<&str>,
) {
    const EV_FORK: i32 = libc::PTRACE_EVENT_FORK;
    const EV_VFORK: i32 = libc::PTRACE_EVENT_VFORK;
    const EV_CLONE: i32 = libc::PTRACE_EVENT_CLONE;
    const EV_EXEC: i32 = libc::PTRACE_EVENT_EXEC;
    const EV_EXIT: i32 = libc::PTRACE_EVENT_EXIT;
    const EV_STOP: i32 = libc::PTRACE_EVENT_STOP;
    let raw = |p: Pid| p.as_raw();
    match st {
        WaitStatus::PtraceEvent(pid, _, ev)
            if ev == EV_FORK || ev == EV_VFORK || ev == EV_CLONE =>
        {
            if let Ok(new) = ptrace::getevent(pid) {
                let new = new as i32;
                attached.insert(new);
                if ev == EV_CLONE && is_thread(new) {
                    threads.insert(new);
                } else {
                    let parent = if threads.contains(&raw(pid)) {
                        tgid(raw(pid)).unwrap_or(raw(pid))
                    } else {
                        raw(pid)
                    };
                    let exe = procs_exe(procs, parent);
                    let e = procs.entry(new).or_insert_with(|| Proc {
                        pid: new,
                        ..Default::default()
                    });
                    e.parent = parent;
                    e.born = t;
                    e.exe = e.exe.take().or(exe);
                }
            }
            let _ = ptrace::cont(pid, None);
        }
        WaitStatus::PtraceEvent(pid, _, EV_EXEC) => {
            if let Some(p) = procs.get_mut(&raw(pid)) {
                p.exe = std::fs::read_link(format!("/proc/{pid}/exe"))
                    .ok()
                    .map(|x| x.display().to_string());
            }
            let _ = ptrace::cont(pid, None);
        }
        WaitStatus::PtraceEvent(pid, _, EV_EXIT) => {
            if !threads.contains(&raw(pid)) {
                // Stopped before its fds are closed: last chance to see which files it held.
                sample_one(procs, raw(pid), dir);
                if let Some(p) = procs.get_mut(&raw(pid)) {
                    p.exited.get_or_insert(t);
                    p.status = ptrace::getevent(pid).ok().map(|s| s as i32);
                }
            }
            let _ = ptrace::cont(pid, None);
        }
        WaitStatus::PtraceEvent(pid, _, EV_STOP) if frozen.contains(&raw(pid)) => {
            // Frozen on purpose: stay stopped, yet report the signals that arrive.
            // Safety: PTRACE_LISTEN on a tracee in a PTRACE_EVENT_STOP.
            unsafe { libc::ptrace(libc::PTRACE_LISTEN, raw(pid), 0, 0) };
        }
        WaitStatus::PtraceEvent(pid, sig, EV_STOP) => {
            if resumed.insert(raw(pid)) {
                // Attach stop of a new tracee; its fork event may not have come yet.
                attached.insert(raw(pid));
                if !procs.contains_key(&raw(pid)) && !threads.contains(&raw(pid)) {
                    if is_thread(raw(pid)) {
                        threads.insert(raw(pid));
                    } else {
                        let parent = crate::inspect::info(raw(pid)).map(|i| i.ppid).unwrap_or(0);
                        procs.insert(
                            raw(pid),
                            Proc {
                                pid: raw(pid),
                                parent,
                                born: t,
                                ..Default::default()
                            },
                        );
                    }
                }
                let _ = ptrace::cont(pid, None);
            } else if matches!(
                sig,
                Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU
            ) {
                // A real group-stop: keep it stopped, as it would be untraced.
                // Safety: PTRACE_LISTEN on a tracee in group-stop.
                unsafe { libc::ptrace(libc::PTRACE_LISTEN, raw(pid), 0, 0) };
            } else {
                let _ = ptrace::cont(pid, None);
            }
        }
        WaitStatus::PtraceEvent(pid, _, _) | WaitStatus::PtraceSyscall(pid) => {
            let _ = ptrace::cont(pid, None);
        }
        // A frozen process is hung, not stopped: SIGCONT and the like do not revive it (it
        // stays in this stop); a fatal signal goes through the arm below and ends it.
        WaitStatus::Stopped(pid, sig) if frozen.contains(&raw(pid)) && !ends_a_hang(sig) => {}
        WaitStatus::Stopped(pid, sig) => {
            // Signal-delivery stop: deliver the signal as if we were not here.
            if let Some(tgid) = misrouted(pid, sig) {
                // Untraced, the kernel would have given this process-directed signal to the
                // main thread; suppress it here and send it to the main thread itself (see
                // `misrouted`). Thread-directed, so a main thread busy in a stop of its own
                // (the SIGCONT that woke everyone) still gets it once it resumes.
                let _ = ptrace::cont(pid, None);
                // Safety: tgkill(2) with plain integers.
                unsafe {
                    libc::syscall(libc::SYS_tgkill, tgid, tgid, sig as i32);
                }
            } else {
                let _ = ptrace::cont(pid, Some(sig));
            }
        }
        WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _) => {
            attached.remove(&raw(pid));
            if threads.contains(&raw(pid)) {
                return;
            }
            // A process we never saw born (adopted before discovery) still gets its record.
            let p = procs.entry(raw(pid)).or_insert_with(|| Proc {
                pid: raw(pid),
                born: t,
                ..Default::default()
            });
            p.exited.get_or_insert(t);
            if p.status.is_none() {
                p.status = Some(raw_status(&st));
            }
            // Our own child (main, or an orphan re-parented to us): this wait reaped it.
            if crate::inspect::info(raw(pid)).is_none() {
                p.gone = true;
            }
        }
        _ => {}
    }
}

pub(super) fn sample_one(procs: &mut BTreeMap<i32, Proc>, pid: i32, dir: Option<&str>) {
    let Some(p) = procs.get(&pid) else { return };
    let mut one = BTreeMap::new();
    let mut q = p.clone();
    q.exited = None;
    q.gone = false;
    one.insert(pid, q);
    sample_holders(&mut one, dir);
    if let (Some(q), Some(p)) = (one.remove(&pid), procs.get_mut(&pid)) {
        p.held = q.held;
    }
}

pub(super) fn procs_exe(procs: &BTreeMap<i32, Proc>, parent: i32) -> Option<String> {
    procs.get(&parent).and_then(|p| p.exe.clone())
}

pub(super) fn raw_status(st: &WaitStatus) -> i32 {
    match st {
        WaitStatus::Exited(_, c) => (*c & 0xff) << 8,
        WaitStatus::Signaled(_, s, _) => *s as i32,
        _ => 0,
    }
}

/// /proc/PID/status, parsed by procfs.
fn status(pid: i32) -> Option<procfs::process::Status> {
    procfs::process::Process::new(pid).ok()?.status().ok()
}

/// A process-directed signal (kill() from another process) that a thread other than the main
/// one dequeued only because we trace it: the process's tgid, to send it there again.
///
/// Why it happens: SIGCONT to a PTRACE_SEIZEd process wakes every one of its threads (the
/// kernel's ptrace_trap_notify), so a helper thread sleeping in accept() can dequeue a SIGTERM
/// sent just before it — untraced, only the thread chosen for the SIGTERM (the main one, when it
/// does not block it) would wake. A Python program whose main thread waits in pause() then
/// never runs its handler (CPython runs handlers in the main thread only when it wakes there).
/// At most `MAX_REROUTES` times per process and signal, as a guard; the main thread's copy is
/// thread-directed (SI_TKILL, sent by the grader), which only a program reading si_code or
/// si_pid could tell from the original.
fn misrouted(tid: Pid, sig: Signal) -> Option<i32> {
    const MAX_REROUTES: u32 = 8;
    static REROUTES: std::sync::Mutex<BTreeMap<(i32, i32), u32>> =
        std::sync::Mutex::new(BTreeMap::new());
    // SIGCONT did its work when sent (it woke the process); sending it again would wake every
    // thread once more and misroute the very signal being rerouted.
    if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP | Signal::SIGCONT) {
        return None;
    }
    let tgid = tgid(tid.as_raw())?;
    if tgid == tid.as_raw() {
        return None;
    }
    let info = ptrace::getsiginfo(tid).ok()?;
    // Safety: si_pid is valid for SI_USER signals, which is all this reads it for.
    let from = unsafe { info.si_pid() };
    if info.si_code != libc::SI_USER || from == tgid || from == 0 {
        return None;
    }
    if blocked_by_main(tgid, sig) {
        return None;
    }
    let mut n = REROUTES.lock().unwrap_or_else(|e| e.into_inner());
    let count = n.entry((tgid, sig as i32)).or_insert(0);
    if *count >= MAX_REROUTES {
        return None;
    }
    *count += 1;
    Some(tgid)
}

/// The main thread of `tgid` blocks `sig` (SigBlk of /proc/TGID/task/TGID/status).
fn blocked_by_main(tgid: i32, sig: Signal) -> bool {
    let text =
        std::fs::read_to_string(format!("/proc/{tgid}/task/{tgid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|mask| mask & (1u64 << (sig as i32 - 1)) != 0)
}

pub(super) fn tgid(pid: i32) -> Option<i32> {
    status(pid).map(|s| s.tgid)
}

pub(super) fn is_thread(pid: i32) -> bool {
    tgid(pid).is_some_and(|g| g != pid)
}

/// main is stopped at its exit event (ptrace), not yet dead: which processes still run, and which
/// of its children are zombies it never reaped. Exact, since main cannot go on until we resume it.
pub(super) fn main_exiting(
    out: &mut Outcome,
    procs: &BTreeMap<i32, Proc>,
    threads: &BTreeSet<i32>,
    main: i32,
) {
    for p in procs
        .values()
        .filter(|p| p.pid != main && !p.gone && !threads.contains(&p.pid))
    {
        match crate::inspect::info(p.pid) {
            Some(i) if i.is_zombie() && i.ppid == main && !out.adopted_zombies.contains(&p.pid) => {
                out.adopted_zombies.push(p.pid);
            }
            Some(i) if !i.is_zombie() && p.exited.is_none() => out.alive_at_main_end.push(p.pid),
            _ => {}
        }
    }
}

/// Whether `p`, a child of ours once main has ended, was main's own child. A zombie here is
/// main's unreaped child only if we knew it as main's child: one orphaned alive earlier (its
/// parent, not main, exited first) was ours when it died. One never sampled (it lived less than
/// a period) is judged by its session: main is a session leader, so its children are in main's
/// session or lead their own; a process in another's session (a daemon's grandchild, after the
/// middle process's setsid) was never main's child.
pub(super) fn was_mains(known: Option<&Proc>, p: &crate::inspect::ProcInfo, main: i32) -> bool {
    match known {
        Some(x) => x.parent == main,
        None => p.session == main || p.session == p.pid,
    }
}

/// When main's exit is reaped, its children have just been re-parented to us (the subreaper).
/// Without ptrace this is the first moment we know main ended.
pub(super) fn main_ended(out: &mut Outcome, procs: &mut BTreeMap<i32, Proc>, me: i32, main: i32) {
    for p in tree_children(me) {
        if p.pid == main {
            continue;
        }
        let mains = was_mains(procs.get(&p.pid), &p, main);
        procs.entry(p.pid).or_insert_with(|| Proc {
            pid: p.pid,
            parent: main,
            ..Default::default()
        });
        if out.main_exiting {
            continue;
        }
        if p.is_zombie() && mains && !out.adopted_zombies.contains(&p.pid) {
            out.adopted_zombies.push(p.pid);
        } else if !p.is_zombie() && !out.alive_at_main_end.contains(&p.pid) {
            out.alive_at_main_end.push(p.pid);
        }
    }
    if out.main_exiting {
        return;
    }
    for p in procs.values() {
        if p.pid != main
            && p.exited.is_none()
            && crate::inspect::info(p.pid).is_some_and(|i| !i.is_zombie())
            && !out.alive_at_main_end.contains(&p.pid)
        {
            out.alive_at_main_end.push(p.pid);
        }
    }
}

/// Zombie watch while main lives: two samples at least, and longer than the grace.
pub(super) fn sample_states(
    procs: &mut BTreeMap<i32, Proc>,
    t: Duration,
    grace: Duration,
    main_alive: bool,
    lingered: &mut Vec<(i32, Duration, u32)>,
    threads: &BTreeSet<i32>,
    only_exited: bool,
) {
    for p in procs
        .values_mut()
        .filter(|p| !p.gone && !threads.contains(&p.pid))
        .filter(|p| !only_exited || p.exited.is_some())
    {
        match crate::inspect::info(p.pid) {
            None => {
                p.gone = true;
                p.exited.get_or_insert(t);
            }
            Some(i) if i.is_zombie() => {
                let since = *p.zombie_since.get_or_insert(t);
                p.zombie_samples += 1;
                p.exited.get_or_insert(t);
                if main_alive
                    && p.zombie_samples >= 2
                    && t - since > grace
                    && !lingered.iter().any(|l| l.0 == p.pid)
                {
                    lingered.push((p.pid, t - since, p.zombie_samples));
                }
            }
            Some(_) => {}
        }
    }
}

/// Without ptrace: new members are found by scanning descendants (and the cgroup).
pub(super) fn discover(
    procs: &mut BTreeMap<i32, Proc>,
    me: i32,
    t: Duration,
    cg: Option<&PidsCgroup>,
) {
    let mut found: Vec<(i32, i32)> = crate::inspect::descendants(me)
        .into_iter()
        .map(|p| (p.pid, p.ppid))
        .collect();
    if let Some(cg) = cg {
        for pid in cg.members() {
            let ppid = crate::inspect::info(pid).map(|i| i.ppid).unwrap_or(0);
            found.push((pid, ppid));
        }
    }
    for (pid, ppid) in found {
        procs.entry(pid).or_insert_with(|| Proc {
            pid,
            parent: ppid,
            born: t,
            exe: std::fs::read_link(format!("/proc/{pid}/exe"))
                .ok()
                .map(|x| x.display().to_string()),
            ..Default::default()
        });
    }
}

/// Processes of the run that still exist (alive or zombie).
pub(super) fn living(procs: &BTreeMap<i32, Proc>, me: i32, cg: Option<&PidsCgroup>) -> Vec<i32> {
    let mut v: BTreeSet<i32> = procs
        .values()
        .filter(|p| !p.gone && crate::inspect::info(p.pid).is_some())
        .map(|p| p.pid)
        .collect();
    v.extend(tree_children(me).into_iter().map(|p| p.pid));
    if let Some(cg) = cg {
        v.extend(cg.members());
    }
    v.into_iter().collect()
}

/// SIGKILL every member until none is left, reaping all of them; records what was running.
pub(super) fn kill_all(
    out: &mut Outcome,
    procs: &mut BTreeMap<i32, Proc>,
    attached: &mut BTreeSet<i32>,
    me: i32,
    cg: Option<&PidsCgroup>,
    start: Instant,
    why: &str,
) {
    let safety = Instant::now() + Duration::from_secs(30);
    let mut first = true;
    loop {
        let members = living(procs, me, cg);
        let running: Vec<i32> = members
            .iter()
            .copied()
            .filter(|p| crate::inspect::info(*p).is_some_and(|i| !i.is_zombie()))
            .collect();
        if first {
            for p in &running {
                let exe = procs.get(p).and_then(|x| x.exe.clone()).unwrap_or_default();
                out.killed.push((
                    *p,
                    format!("{why} ({})", exe.rsplit('/').next().unwrap_or("")),
                ));
            }
            first = false;
        }
        if let Some(cg) = cg {
            cg.kill();
        }
        for p in &members {
            let _ = nix::sys::signal::kill(Pid::from_raw(*p), Signal::SIGKILL);
        }
        // Reap (as tracer and as parent) everything that has died.
        loop {
            match waitpid(
                Pid::from_raw(-1),
                Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
            ) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Err(Errno::EINTR) => continue,
                Err(_) => break,
                Ok(st) => {
                    let t = start.elapsed();
                    if let Some(pid) = st.pid() {
                        match st {
                            WaitStatus::Exited(..) | WaitStatus::Signaled(..) => {
                                attached.remove(&pid.as_raw());
                                if let Some(p) = procs.get_mut(&pid.as_raw()) {
                                    p.exited.get_or_insert(t);
                                }
                            }
                            // A stop of a tracee: let it run into its SIGKILL.
                            _ => {
                                let _ = ptrace::cont(pid, None);
                            }
                        }
                    }
                }
            }
        }
        for p in procs.values_mut() {
            if crate::inspect::info(p.pid).is_none() {
                p.gone = true;
            }
        }
        if living(procs, me, cg).is_empty() && tree_children(me).is_empty() {
            attached.clear();
            return;
        }
        if Instant::now() > safety {
            out.killed.push((
                0,
                tf!(
                    "some processes could not be killed within 30 s",
                    "certains processus n'ont pas pu être tués en 30 s"
                ),
            ));
            return;
        }
        // Block until the next death we can be told of (child or tracee); else wait briefly for
        // non-child members (their parents reap them) as a safety net.
        if !attached.is_empty() || !tree_children(me).is_empty() {
            if let Ok(st) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::__WALL)) {
                if let Some(pid) = st.pid() {
                    if matches!(st, WaitStatus::Exited(..) | WaitStatus::Signaled(..)) {
                        attached.remove(&pid.as_raw());
                    } else {
                        let _ = ptrace::cont(pid, None);
                    }
                }
            }
        } else {
            let _ = crate::signals::poll_fds(&[], Some(Duration::from_millis(5)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pid: i32, session: i32) -> crate::inspect::ProcInfo {
        crate::inspect::ProcInfo {
            pid,
            ppid: 1,
            state: 'Z',
            comm: "x".into(),
            pgrp: session,
            session,
            tty_nr: 0,
        }
    }

    /// An unsampled zombie is main's child if it is in main's session or leads its own; a
    /// daemon's grandchild (in its setsid'd parent's session) is not: lab 6's refused daemon,
    /// orphaned to the grader, was judged "never reaped" under load.
    #[test]
    fn unsampled_zombies_are_judged_by_session() {
        let main = 100;
        assert!(was_mains(None, &info(101, main), main));
        assert!(was_mains(None, &info(102, 102), main));
        assert!(!was_mains(None, &info(104, 103), main));
        let known = Proc {
            pid: 104,
            parent: main,
            ..Default::default()
        };
        assert!(was_mains(Some(&known), &info(104, 103), main));
        let orphan = Proc {
            pid: 105,
            parent: 103,
            ..Default::default()
        };
        assert!(!was_mains(Some(&orphan), &info(105, main), main));
    }
}
