//! Runs one implementation as a black box and records what happened, by events where it can.
//!
//! The grader is a child subreaper and traces the tree with PTRACE_SEIZE and only the
//! fork/vfork/clone/exec/exit options: no syscall stops, so a traced program runs at full speed
//! and every process's birth (with its parent), exec and exit (with its time and status) is seen.
//! Where ptrace is refused it falls back to sampling /proc, and says so. Exits of our own
//! children, and orphans re-parented to us when main ends, come from waitpid: events too.

use super::cgroup::PidsCgroup;
use crate::process;
use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::io::Read;
#[allow(unused_imports)]
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to run and under which limits.
pub struct Launch {
    /// Absolute path of the program and its full argv (argv[0] included).
    pub program: PathBuf,
    pub argv: Vec<String>,
    /// The whole environment (the box's fixed one: nothing of the grader's passes).
    pub env: Vec<(String, String)>,
    /// The implementation's cwd: a private scratch directory.
    pub cwd: PathBuf,
    /// Drop to this uid/gid before exec (the grader runs as root).
    pub run_as: Option<(u32, u32)>,
    pub timeout: Duration,
    pub cpu_secs: u64,
    /// Bytes of stdout / stderr kept; more is drained and counted, never blocks the writer.
    pub output_cap: usize,
    /// Processes the run may have at once.
    pub max_procs: u64,
    /// Directory watched with inotify (the contract's DIR).
    pub watch_dir: Option<PathBuf>,
    /// Only names in `watch_dir` starting with this count (lab 1 watches /dev/shm for P*).
    pub watch_prefix: String,
    pub zombie_grace: Duration,
    /// After main ends, how long the rest of the tree may take to end on its own.
    pub linger: Duration,
    pub use_ptrace: bool,
    /// Leave what still runs when main ends (a daemon) running, listed in `survivors`, instead
    /// of judging it left over. Only without ptrace: a traced survivor would stop with no tracer.
    pub keep_survivors: bool,
    /// Run number, to name the cgroup.
    pub run_no: u32,
    /// Private network and IPC namespaces (root with CAP_SYS_ADMIN).
    pub netns: bool,
    pub ipcns: bool,
    /// A normal user's box (user, PID, network, IPC namespaces) where the kernel allows it;
    /// only for traced runs that keep nothing running after main (not lab 6's daemon).
    pub user_pid_ns: bool,
    /// The box's mount namespace, as operations the child performs (empty: none).
    pub mounts: Vec<crate::sandbox::MountOp>,
    /// RLIMIT_FSIZE, and RLIMIT_AS where no memory cgroup bounds the box.
    pub file_size: u64,
    pub address_space: Option<u64>,
    /// How processes of the box name `watch_dir` (lab 1: the host's box shm is their /dev/shm).
    pub watch_alias: Option<PathBuf>,
    /// main is a reference that starts the implementation's processes under the box's other
    /// uid: it keeps CAP_SETUID/CAP_SETGID for that (see `sandbox::Plan::keep_setuid`).
    pub keep_setuid: bool,
}

/// One process of the tree (threads are left out).
#[derive(Debug, Clone, Default)]
pub struct Proc {
    pub pid: i32,
    /// The process that forked it (0 for main).
    pub parent: i32,
    pub born: Duration,
    pub exe: Option<String>,
    /// When it exited (ptrace exit event, or first seen dead).
    pub exited: Option<Duration>,
    /// Raw wait status at exit, when known.
    pub status: Option<i32>,
    pub zombie_since: Option<Duration>,
    pub zombie_samples: u32,
    /// Files of the watched directory it was seen holding open.
    pub held: BTreeSet<String>,
    /// Gone from /proc (reaped) as far as we know.
    pub gone: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirEvent {
    /// A new entry; `fifo` from lstat at the time (None: already gone).
    Created {
        name: String,
        fifo: Option<bool>,
    },
    Opened {
        name: String,
    },
    ClosedWrite {
        name: String,
    },
    ClosedNoWrite {
        name: String,
    },
    Deleted {
        name: String,
    },
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub tracking: String,
    pub protections: Vec<String>,
    pub main_pid: i32,
    pub main_status: Option<WaitStatus>,
    pub main_end: Option<Duration>,
    pub timed_out: bool,
    /// Complete stdout lines with the time they arrived.
    pub stdout_lines: Vec<(Duration, String)>,
    pub stdout_bytes: usize,
    pub stderr: Vec<u8>,
    pub stderr_bytes: usize,
    pub procs: BTreeMap<i32, Proc>,
    /// main's children that were zombies when main ended (never reaped).
    pub adopted_zombies: Vec<i32>,
    /// Processes of the tree still running when main ended.
    pub alive_at_main_end: Vec<i32>,
    /// Zombies that outlived `zombie_grace` while main lived: (pid, how long, samples).
    pub lingered: Vec<(i32, Duration, u32)>,
    /// Still running after main ended and the linger time: killed.
    pub killed: Vec<(i32, String)>,
    pub dir_events: Vec<DirEvent>,
    pub refused_forks: u64,
    pub wall: Duration,
    /// main's exit event was seen (ptrace): the snapshots above were taken then.
    pub main_exiting: bool,
    /// With `keep_survivors`: the processes still running when main ended (not main itself).
    pub survivors: Vec<i32>,
    /// Tree followed by ptrace events; false: /proc sampling, which can miss short lives.
    pub traced: bool,
    /// System V objects left in the box's IPC namespace when the run ended.
    pub sysv_left: Vec<String>,
    /// The grader was interrupted (SIGINT, SIGTERM, SIGHUP): the box was killed.
    pub interrupted: Option<Signal>,
}

/// A failure of the harness itself (exit status 3), never the implementation's fault.
#[derive(Debug)]
pub struct HarnessError(pub String);

const TICK: Duration = Duration::from_millis(5);
/// Traced, nothing pending: every change we care about arrives as an event.
const IDLE_TICK: Duration = Duration::from_millis(200);

/// What a script sees each tick of a run.
pub struct View<'a> {
    pub t: Duration,
    pub main: i32,
    pub procs: &'a BTreeMap<i32, Proc>,
    pub main_end: Option<Duration>,
}

/// Something a script does to the running tree.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    Signal(i32, Signal),
    /// Stop a process with PTRACE_INTERRUPT and keep it stopped: a hang its parent cannot see
    /// through waitpid (unlike SIGSTOP, which WUNTRACED reveals). Fatal signals still reach it.
    Freeze(i32),
}

/// Fault injection during a run (lab 3): called at every tick with the current tree.
pub trait Script {
    fn tick(&mut self, v: &View<'_>) -> Vec<Action>;
}

pub fn run(l: &Launch) -> Result<Outcome, HarnessError> {
    run_scripted(l, None)
}

pub fn run_scripted(
    l: &Launch,
    mut script: Option<&mut dyn Script>,
) -> Result<Outcome, HarnessError> {
    let herr = |m: String| HarnessError(m);
    let mut out = Outcome::default();
    let start = Instant::now();

    let (out_r, out_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| herr(format!("pipe: {e}")))?;
    let (err_r, err_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| herr(format!("pipe: {e}")))?;
    let (go_r, go_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| herr(format!("pipe: {e}")))?;
    for fd in [&out_r, &err_r] {
        set_nonblocking(fd);
    }
    let out_r = std::fs::File::from(out_r);
    let err_r = std::fs::File::from(err_r);
    let mut sigs = crate::signals::SignalPipe::new(&[
        Signal::SIGCHLD,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
    ])
    .map_err(|e| herr(e.to_string()))?;
    let inotify = match &l.watch_dir {
        Some(d) => Some(Watch::new(d).map_err(herr)?),
        None => None,
    };

    let cgroup = if nix::unistd::geteuid().is_root() {
        match PidsCgroup::create(l.max_procs, l.run_no) {
            Ok(cg) => {
                out.protections.push(format!(
                    "processes: at most {} ({}); the whole box killed through it",
                    l.max_procs,
                    cg.describe(),
                ));
                Some(cg)
            }
            Err(why) => {
                out.protections.push(format!(
                    "processes: RLIMIT_NPROC only ({why}); the box is killed process by process"
                ));
                None
            }
        }
    } else {
        out.protections.push(
            "processes: RLIMIT_NPROC (no cgroup as non-root); the box is killed process by process"
                .into(),
        );
        None
    };
    let nproc_limit = nproc_bound(l);

    let argv: Vec<CString> = l
        .argv
        .iter()
        .map(|a| CString::new(a.as_str()).map_err(|_| herr(format!("NUL byte in argument {a:?}"))))
        .collect::<Result<_, _>>()?;
    let path = CString::new(l.program.as_os_str().as_encoded_bytes())
        .map_err(|_| herr("NUL in program path".into()))?;
    let env: Vec<CString> = l
        .env
        .iter()
        .filter_map(|(k, v)| CString::new(format!("{k}={v}")).ok())
        .collect();
    let cwd = CString::new(l.cwd.as_os_str().as_encoded_bytes())
        .map_err(|_| herr("NUL in cwd".into()))?;
    let user_pid_ns = l.user_pid_ns && l.use_ptrace && !l.keep_survivors;
    if l.user_pid_ns && !user_pid_ns {
        out.protections.push(
            "namespaces: none for this run (untraced, or a daemon must outlive its launcher)"
                .into(),
        );
    }
    if user_pid_ns {
        out.protections.push(
            "namespaces: user (identity map), PID (the box's own init; kill(-1) reaches only the \
             box), network (loopback only), IPC"
                .into(),
        );
    }
    // The gate carries (step, errno) records from the child; it closes at exec (CLOEXEC).
    let (gate_r, gate_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| herr(format!("pipe: {e}")))?;
    let plan = crate::sandbox::Plan {
        stdout: out_w.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
        gate: gate_w.as_raw_fd(),
        go: go_r.as_raw_fd(),
        cwd,
        run_as: l.run_as,
        netns: l.netns || user_pid_ns,
        ipcns: l.ipcns || user_pid_ns,
        user_pid_ns,
        mounts: l.mounts.clone(),
        cpu_secs: l.cpu_secs,
        nproc: nproc_limit,
        file_size: l.file_size,
        address_space: l.address_space,
        keep_setuid: l.keep_setuid,
    };

    // Safety: the grader is single-threaded (no thread is ever started before grading), so the
    // child may run ordinary code before execve; `apply_and_exec` never returns: it execs or
    // reports its failing step on the gate and _exits.
    let child = match unsafe { fork() } {
        Err(e) => return Err(herr(format!("fork: {e}"))),
        Ok(ForkResult::Child) => {
            drop((out_r, err_r, go_w, gate_r));
            plan.apply_and_exec(&path, &argv, &env)
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    drop((out_w, err_w, go_r, gate_w));
    let gate_r = std::fs::File::from(gate_r);
    let forked = child;
    // Into the cgroup at once: a migration waits for an RCU grace period, which here overlaps
    // the child's making of its namespaces (it cannot fork before the go byte anyway).
    if let Some(cg) = &cgroup {
        if let Err(why) = cg.add(forked.as_raw()) {
            out.protections.push(format!("cgroup join failed: {why}"));
        }
    }
    crate::sandbox::mark("cgroup");
    let fail = |msg: String| {
        // Not exec'd: kill it and reap it (resuming it through any ptrace stop) before we say why.
        let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
        reap_one(child);
        herr(msg)
    };
    // The child has made its namespaces (or failed) when its first record arrives.
    let (ipc_ns, ns_main) = match read_gate(&gate_r, child) {
        GateRecord::Ready(m) => {
            let who = if m > 0 { m } else { child.as_raw() };
            // Root only: entering a normal user's box namespace is allowed, leaving it is not.
            let ns = l
                .ipcns
                .then(|| std::fs::File::open(format!("/proc/{who}/ns/ipc")).ok())
                .flatten()
                .map(OwnedFd::from);
            (ns, (m > 0).then_some(Pid::from_raw(m)))
        }
        GateRecord::Failed(step, e) => return Err(fail(setup_failure(l, step, e))),
        GateRecord::Died(why) => {
            return Err(fail(format!("the box's first process {why} before exec")))
        }
        GateRecord::Closed => {
            return Err(fail("the exec gate closed before the box was ready".into()))
        }
    };

    // A normal user's box: the child we forked stays outside the PID namespace, waiting for its
    // init; main is that init's child. Everything below judges main; the helper is ended last.
    let mut helper = ns_main.map(|_| child);
    let child = ns_main.unwrap_or(child);
    HELPER.store(
        helper.map_or(0, |h| h.as_raw()),
        std::sync::atomic::Ordering::SeqCst,
    );
    let mut traced = false;
    if l.use_ptrace {
        let opts = ptrace::Options::PTRACE_O_TRACEFORK
            | ptrace::Options::PTRACE_O_TRACEVFORK
            | ptrace::Options::PTRACE_O_TRACECLONE
            | ptrace::Options::PTRACE_O_TRACEEXEC
            | ptrace::Options::PTRACE_O_TRACEEXIT
            | ptrace::Options::PTRACE_O_EXITKILL;
        match ptrace::seize(child, opts) {
            Ok(()) => traced = true,
            Err(e) => out.tracking = format!("/proc polling (ptrace refused: {e})"),
        }
    } else {
        out.tracking = "/proc polling (ptrace not requested)".into();
    }
    if traced {
        out.tracking = "ptrace (fork/exec/exit events)".into();
    }
    out.traced = traced;
    crate::sandbox::mark("seized");
    let _ = nix::unistd::write(&go_w, b"g");
    drop(go_w);
    match read_gate(&gate_r, forked) {
        GateRecord::Closed => {}
        GateRecord::Failed(step, e) => return Err(fail(setup_failure(l, step, e))),
        GateRecord::Died(why) => {
            return Err(fail(format!("the box's first process {why} before exec")))
        }
        GateRecord::Ready(_) => return Err(fail("a second READY on the exec gate".into())),
    }
    drop(gate_r);
    out.main_pid = child.as_raw();
    crate::sandbox::mark("exec'd");

    let mut procs: BTreeMap<i32, Proc> = BTreeMap::new();
    procs.insert(
        child.as_raw(),
        Proc {
            pid: child.as_raw(),
            born: start.elapsed(),
            exe: Some(l.program.display().to_string()),
            ..Default::default()
        },
    );
    let mut threads: BTreeSet<i32> = BTreeSet::new();
    let mut attached: BTreeSet<i32> = BTreeSet::new();
    attached.insert(child.as_raw());
    // Tracees past their attach stop (main was seized running: it has none).
    let mut resumed: BTreeSet<i32> = BTreeSet::new();
    resumed.insert(child.as_raw());
    let mut frozen: BTreeSet<i32> = BTreeSet::new();
    let mut stdout_buf: Vec<u8> = Vec::new();
    let deadline = start + l.timeout;
    let mut linger_until: Option<Instant> = None;
    let me = std::process::id() as i32;
    // Our children at the last tick (poll mode): those are not adopted from main.
    let mut prev_children: BTreeSet<i32> = tree_children(me)
        .iter()
        .map(|p| p.pid)
        .filter(|p| *p != child.as_raw())
        .collect();
    // /proc/PID/fd and maps name files as the box sees them: the alias, when the box's view of
    // the watched directory differs from ours (lab 1's /dev/shm).
    let dir_prefix = l
        .watch_alias
        .as_ref()
        .or(l.watch_dir.as_ref())
        .map(|d| format!("{}/{}", d.display(), l.watch_prefix));

    // Output pipes at end of file are no longer polled: a closed stdout must not wake us forever.
    let mut open_pipes = [true, true];
    loop {
        let now = Instant::now();
        // Events wake us (output, inotify, SIGCHLD for every ptrace stop and child exit); the
        // tick only serves what no event announces: a script's timers, a zombie's grace, and
        // /proc sampling when untraced. Traced with nothing pending, it is long.
        let waiting_zombie = procs
            .values()
            .any(|p| p.exited.is_some() && !p.gone && !threads.contains(&p.pid));
        let tick = if script.is_some() || !traced || waiting_zombie || out.main_end.is_some() {
            TICK
        } else {
            IDLE_TICK
        };
        let wake = [deadline, linger_until.unwrap_or(deadline), now + tick]
            .into_iter()
            .min()
            .unwrap_or(now);
        let mut all: Vec<std::os::fd::BorrowedFd<'_>> = vec![sigs.fd()];
        if open_pipes[0] {
            all.push(out_r.as_fd());
        }
        if open_pipes[1] {
            all.push(err_r.as_fd());
        }
        if let Some(ino) = &inotify {
            all.push(ino.as_fd());
        }
        let _ = crate::signals::poll_fds(&all, Some(wake.saturating_duration_since(now)));
        let t = start.elapsed();
        let eof = drain_outputs(&out_r, &err_r, &mut stdout_buf, &mut out, l.output_cap, t);
        open_pipes = [open_pipes[0] && !eof[0], open_pipes[1] && !eof[1]];
        sigs.take();
        if let Some(sig) = crate::signals::interrupted() {
            out.interrupted = Some(sig);
            kill_all(
                &mut out,
                &mut procs,
                &mut attached,
                me,
                cgroup.as_ref(),
                start,
                "the grader was interrupted",
            );
            break;
        }
        if let Some(ino) = &inotify {
            let opened = read_dir_events(
                ino,
                l.watch_dir.as_deref(),
                &l.watch_prefix,
                &mut out.dir_events,
            );
            if opened {
                sample_holders(&mut procs, dir_prefix.as_deref());
            }
        }

        // Every state change of a tracee or child: handle them all now.
        let mut batch_reaped: Vec<i32> = Vec::new();
        let main_was_running = out.main_end.is_none();
        loop {
            let st = match waitpid(
                Pid::from_raw(-1),
                Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
            ) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Err(Errno::EINTR) => continue,
                Err(_) => break,
                Ok(st) => st,
            };
            let t = start.elapsed();
            // The PID-namespace helper ended (its namespace is empty): not part of the tree.
            if helper.is_some() && st.pid() == helper {
                if matches!(st, WaitStatus::Exited(..) | WaitStatus::Signaled(..)) {
                    helper = None;
                    HELPER.store(0, std::sync::atomic::Ordering::SeqCst);
                }
                continue;
            }
            // main is stopped at its exit event until `handle` resumes it: the snapshot must be
            // taken before, while its children are still its own.
            if let WaitStatus::PtraceEvent(pid, _, libc::PTRACE_EVENT_EXIT) = st {
                if pid == child && !out.main_exiting {
                    out.main_exiting = true;
                    main_exiting(&mut out, &procs, &threads, child.as_raw());
                }
            }
            handle(
                st,
                t,
                &mut procs,
                &mut threads,
                &mut attached,
                &mut resumed,
                &frozen,
                dir_prefix.as_deref(),
            );
            // Without ptrace every exit we are told of is a reap by us. One that was not already
            // our child, reaped in the batch where main ends, was main's: adopted as a zombie.
            if let (WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _), false) =
                (st, traced)
            {
                if pid != child && !prev_children.contains(&pid.as_raw()) {
                    batch_reaped.push(pid.as_raw());
                }
            }
            if let (Some(pid), true) = (
                st.pid(),
                matches!(st, WaitStatus::Exited(..) | WaitStatus::Signaled(..)),
            ) {
                if pid == child && out.main_end.is_none() {
                    out.main_status = Some(st);
                    out.main_end = Some(t);
                    main_ended(&mut out, &mut procs, me, child.as_raw());
                    linger_until = Some(Instant::now() + l.linger);
                }
            }
        }

        if main_was_running && out.main_end.is_some() {
            for pid in batch_reaped {
                if !out.adopted_zombies.contains(&pid) {
                    out.adopted_zombies.push(pid);
                }
            }
        }
        if !traced {
            prev_children = tree_children(me).iter().map(|p| p.pid).collect();
        }
        let t = start.elapsed();
        // Traced, every exit is an event: only processes that have exited need watching (for
        // how long they stay zombies), and holders are sampled on each open and exit event.
        // Not on every wake-up: a program printing a line at a time would have us read /proc
        // for each line, on the CPU it needs.
        sample_states(
            &mut procs,
            t,
            l.zombie_grace,
            out.main_end.is_none(),
            &mut out.lingered,
            &threads,
            traced,
        );
        if !traced {
            sample_holders(&mut procs, dir_prefix.as_deref());
            discover(&mut procs, me, t, cgroup.as_ref());
        }

        // A frozen process is hung, not stopped: a fatal signal sent to it must still end it.
        frozen.retain(|pid| {
            if pending_fatal(*pid) {
                // Out of PTRACE_LISTEN through a new interrupt stop, which `handle` resumes:
                // the pending signal is then delivered as to any process.
                let _ = ptrace::interrupt(Pid::from_raw(*pid));
                return false;
            }
            true
        });
        if let Some(sc) = script.as_deref_mut() {
            let view = View {
                t: start.elapsed(),
                main: child.as_raw(),
                procs: &procs,
                main_end: out.main_end,
            };
            for action in sc.tick(&view) {
                match action {
                    Action::Signal(pid, sig) => {
                        let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
                    }
                    Action::Freeze(pid) if traced => {
                        frozen.insert(pid);
                        let _ = ptrace::interrupt(Pid::from_raw(pid));
                    }
                    // Without ptrace the only freeze left is SIGSTOP, which a parent can see.
                    Action::Freeze(pid) => {
                        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGSTOP);
                    }
                }
            }
        }
        let now = Instant::now();
        if out.main_end.is_some() && l.keep_survivors {
            // Reap the zombies we adopted (a daemon's middle process); keep the rest running.
            for (pid, st) in process::reap_all_nohang() {
                let p = procs.entry(pid.as_raw()).or_insert_with(|| Proc {
                    pid: pid.as_raw(),
                    ..Default::default()
                });
                p.gone = true;
                p.status.get_or_insert(raw_status(&st));
            }
            let living = living(&procs, me, cgroup.as_ref());
            out.survivors = living
                .into_iter()
                .filter(|p| {
                    *p != child.as_raw() && crate::inspect::info(*p).is_some_and(|i| !i.is_zombie())
                })
                .collect();
            if let Some(cg) = &cgroup {
                for p in &out.survivors {
                    cg.release(*p);
                }
            }
            break;
        }
        if out.main_end.is_some() {
            let living = living(&procs, me, cgroup.as_ref());
            if living.is_empty() && attached.is_empty() {
                break;
            }
            if std::env::var_os("IPCLAB_DEBUG").is_some() {
                eprintln!("[grade] after main: living {living:?} attached {attached:?}");
            }
            if living.is_empty() && !traced {
                break;
            }
            if linger_until.is_some_and(|u| now >= u) {
                kill_all(
                    &mut out,
                    &mut procs,
                    &mut attached,
                    me,
                    cgroup.as_ref(),
                    start,
                    "still running after main exited",
                );
                break;
            }
        } else if now >= deadline {
            out.timed_out = true;
            kill_all(
                &mut out,
                &mut procs,
                &mut attached,
                me,
                cgroup.as_ref(),
                start,
                "killed at the time limit",
            );
            break;
        }
    }
    crate::sandbox::mark("tree ended");
    // Events queued after the last read (main may have created, opened and exited in between).
    if let Some(ino) = &inotify {
        read_dir_events(
            ino,
            l.watch_dir.as_deref(),
            &l.watch_prefix,
            &mut out.dir_events,
        );
    }
    // Whatever is left in the pipes (every writer is gone now).
    drain_outputs(
        &out_r,
        &err_r,
        &mut stdout_buf,
        &mut out,
        l.output_cap,
        start.elapsed(),
    );
    if !stdout_buf.is_empty() {
        // A last line without newline; what passed the output cap is dropped too.
        let over = out.stdout_bytes.saturating_sub(l.output_cap);
        out.stdout_lines
            .push((start.elapsed(), clip_line(&stdout_buf, over)));
    }
    if let Some(cg) = &cgroup {
        out.refused_forks = cg.refused_forks();
    }
    if let Some(ns) = &ipc_ns {
        out.sysv_left = crate::sandbox::sysv_objects(ns);
    }

    // The PID namespace's helper: its death kills the namespace's init, and with it whatever
    // escaped the trace in there (CLONE_UNTRACED); then it is reaped.
    if let Some(h) = helper {
        let _ = nix::sys::signal::kill(h, Signal::SIGKILL);
        reap_one(h);
        HELPER.store(0, std::sync::atomic::Ordering::SeqCst);
    }
    out.procs = procs
        .into_iter()
        .filter(|(p, _)| !threads.contains(p))
        .collect();
    out.wall = start.elapsed();
    Ok(out)
}

/// Whether `pid` has a signal pending whose default action ends it (SIGTERM, SIGINT...).
fn pending_fatal(pid: i32) -> bool {
    let Ok(st) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let mask = |key: &str| {
        st.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    let pending = mask("SigPnd:") | mask("ShdPnd:");
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
static HELPER: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Our children that belong to the judged tree (the PID-namespace helper does not).
fn tree_children(me: i32) -> Vec<crate::inspect::ProcInfo> {
    let h = HELPER.load(std::sync::atomic::Ordering::SeqCst);
    crate::inspect::children(me)
        .into_iter()
        .filter(|p| p.pid != h)
        .collect()
}

/// What the exec gate said.
enum GateRecord {
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
fn read_gate(gate: &std::fs::File, child: Pid) -> GateRecord {
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
fn reap_one(child: Pid) {
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
fn setup_failure(l: &Launch, step: u32, e: Errno) -> String {
    let name = crate::sandbox::STEPS
        .get(step as usize)
        .copied()
        .unwrap_or("setup");
    let who = match l.run_as {
        Some((u, _)) => format!(" as uid {u}"),
        None => String::new(),
    };
    if name == "execve" {
        let hint = match l.run_as {
            Some((u, _)) if matches!(e, Errno::EACCES | Errno::ENOENT) => format!(
                ": uid {u} cannot reach it (or the interpreter its #! names); put the program where \
                 every user can read and execute it, and name an interpreter such as \
                 /usr/bin/python3, not one under a private home"
            ),
            _ => String::new(),
        };
        return format!(
            "cannot exec {}{who}: {e:?} ({}){hint}",
            l.program.display(),
            e.desc()
        );
    }
    format!(
        "the box could not be built: {name} failed{who}: {e:?} ({})",
        e.desc()
    )
}

/// RLIMIT_NPROC for the uid the implementation runs as: what that uid runs now plus the bound.
/// It does not bind root, hence the uid drop when grading as root.
fn nproc_bound(l: &Launch) -> Option<u64> {
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

fn set_nonblocking(fd: &OwnedFd) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL) {
        let _ = fcntl(
            fd,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        );
    }
}

/// Drains both output pipes into `out` (stdout as timed lines, stderr as bytes); says which
/// pipe is at end of file (every writer gone).
fn drain_outputs(
    out_r: &std::fs::File,
    err_r: &std::fs::File,
    stdout_buf: &mut Vec<u8>,
    out: &mut Outcome,
    cap: usize,
    t: Duration,
) -> [bool; 2] {
    let a = drain(
        out_r,
        stdout_buf,
        &mut out.stdout_bytes,
        cap,
        Some((&mut out.stdout_lines, t)),
    );
    let mut errbuf = std::mem::take(&mut out.stderr);
    let b = drain(err_r, &mut errbuf, &mut out.stderr_bytes, cap, None);
    out.stderr = errbuf;
    [a, b]
}

/// Longest line kept in a report; the rest is counted.
pub const LINE_CAP: usize = 4096;

/// A line as reports show it: at most LINE_CAP bytes, then how many were dropped.
pub fn clip_line(line: &[u8], also_dropped: usize) -> String {
    if line.len() <= LINE_CAP && also_dropped == 0 {
        return String::from_utf8_lossy(line).into_owned();
    }
    let keep = line.len().min(LINE_CAP);
    format!(
        "{}… [{} bytes dropped]",
        String::from_utf8_lossy(&line[..keep]),
        line.len() - keep + also_dropped
    )
}

/// Reads all that is available: keeps up to `cap` bytes, counts the rest. With `lines`, complete
/// lines are moved out of `buf` with their arrival time.
fn drain(
    mut f: &std::fs::File,
    buf: &mut Vec<u8>,
    total: &mut usize,
    cap: usize,
    mut lines: Option<(&mut Vec<(Duration, String)>, Duration)>,
) -> bool {
    let mut chunk = [0u8; 65536];
    loop {
        match f.read(&mut chunk) {
            Ok(0) => return true,
            Err(_) => return false,
            Ok(n) => {
                let keep = cap.saturating_sub(*total).min(n);
                *total += n;
                buf.extend_from_slice(&chunk[..keep]);
                if let Some((lines, t)) = &mut lines {
                    while let Some(i) = buf.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=i).collect();
                        lines.push((*t, clip_line(&line[..line.len() - 1], 0)));
                    }
                }
            }
        }
    }
}

/// One run's inotify watch on the contract's directory, in an inotify instance kept for the
/// grader's life: closing an instance waits for an SRCU grace period (its marks' teardown),
/// ~15 ms here per run; removing a watch does not wait.
struct Watch {
    ino: &'static Inotify,
    wd: nix::sys::inotify::WatchDescriptor,
}

static WATCHER: std::sync::OnceLock<Inotify> = std::sync::OnceLock::new();

impl Watch {
    fn new(d: &Path) -> Result<Watch, String> {
        let ino = match WATCHER.get() {
            Some(i) => i,
            None => {
                let i = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
                    .map_err(|e| format!("inotify_init: {e}"))?;
                WATCHER.get_or_init(|| i)
            }
        };
        // What an earlier run's watch left unread (its IN_IGNORED) is not this run's.
        while matches!(ino.read_events(), Ok(v) if !v.is_empty()) {}
        let mask = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_OPEN
            | AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_CLOSE_NOWRITE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_FROM
            // Not recorded: its only use is to sit between two opens so that inotify does
            // not merge them into one (identical unread events are coalesced).
            | AddWatchFlags::IN_MODIFY;
        let wd = ino
            .add_watch(d, mask)
            .map_err(|e| format!("inotify_add_watch {}: {e}", d.display()))?;
        Ok(Watch { ino, wd })
    }
}

impl AsFd for Watch {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.ino.as_fd()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.ino.rm_watch(self.wd);
    }
}

fn read_dir_events(
    ino: &Watch,
    dir: Option<&Path>,
    prefix: &str,
    events: &mut Vec<DirEvent>,
) -> bool {
    let mut opened = false;
    while let Ok(evs) = ino.ino.read_events() {
        if evs.is_empty() {
            break;
        }
        for ev in evs.into_iter().filter(|e| e.wd == ino.wd) {
            let Some(name) = ev.name.as_ref().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            if !name.starts_with(prefix) {
                continue;
            }
            let m = ev.mask;
            if m.contains(AddWatchFlags::IN_CREATE) {
                let fifo = dir
                    .and_then(|d| std::fs::symlink_metadata(d.join(&name)).ok())
                    .map(|md| {
                        use std::os::unix::fs::FileTypeExt;
                        md.file_type().is_fifo()
                    });
                events.push(DirEvent::Created {
                    name: name.clone(),
                    fifo,
                });
            }
            if m.contains(AddWatchFlags::IN_OPEN) {
                opened = true;
                events.push(DirEvent::Opened { name: name.clone() });
            }
            if m.contains(AddWatchFlags::IN_CLOSE_WRITE) {
                events.push(DirEvent::ClosedWrite { name: name.clone() });
            }
            if m.contains(AddWatchFlags::IN_CLOSE_NOWRITE) {
                events.push(DirEvent::ClosedNoWrite { name: name.clone() });
            }
            if m.intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM) {
                events.push(DirEvent::Deleted { name });
            }
        }
    }
    opened
}

/// Which tree processes hold files of the watched directory right now: open descriptors, or
/// mappings (a shared-memory segment stays mapped after its descriptor is closed).
/// `prefix` is `DIR/NAMEPREFIX`; names are recorded relative to DIR.
fn sample_holders(procs: &mut BTreeMap<i32, Proc>, prefix: Option<&str>) {
    let Some(prefix) = prefix else { return };
    let dir = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or(prefix);
    for p in procs.values_mut().filter(|p| p.exited.is_none() && !p.gone) {
        let mut hold = |t: &str| {
            if t.starts_with(prefix) {
                if let Some(rest) = t.strip_prefix(dir) {
                    p.held.insert(
                        rest.trim_start_matches('/')
                            .trim_end_matches(" (deleted)")
                            .to_string(),
                    );
                }
            }
        };
        if let Ok(rd) = std::fs::read_dir(format!("/proc/{}/fd", p.pid)) {
            for e in rd.filter_map(|e| e.ok()) {
                if let Ok(target) = std::fs::read_link(e.path()) {
                    hold(&target.display().to_string());
                }
            }
        }
        if let Ok(maps) = std::fs::read_to_string(format!("/proc/{}/maps", p.pid)) {
            for line in maps.lines() {
                if let Some(i) = line.find('/') {
                    hold(&line[i..]);
                }
            }
        }
    }
}

/// Signals whose default action would end a hung process.
fn ends_a_hang(sig: Signal) -> bool {
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
fn handle(
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
            let _ = ptrace::cont(pid, Some(sig));
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

fn sample_one(procs: &mut BTreeMap<i32, Proc>, pid: i32, dir: Option<&str>) {
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

fn procs_exe(procs: &BTreeMap<i32, Proc>, parent: i32) -> Option<String> {
    procs.get(&parent).and_then(|p| p.exe.clone())
}

fn raw_status(st: &WaitStatus) -> i32 {
    match st {
        WaitStatus::Exited(_, c) => (*c & 0xff) << 8,
        WaitStatus::Signaled(_, s, _) => *s as i32,
        _ => 0,
    }
}

fn tgid(pid: i32) -> Option<i32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

fn is_thread(pid: i32) -> bool {
    tgid(pid).is_some_and(|g| g != pid)
}

/// main is stopped at its exit event (ptrace), not yet dead: which processes still run, and which
/// of its children are zombies it never reaped. Exact, since main cannot go on until we resume it.
fn main_exiting(
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

/// When main's exit is reaped, its children have just been re-parented to us (the subreaper).
/// Without ptrace this is the first moment we know main ended.
fn main_ended(out: &mut Outcome, procs: &mut BTreeMap<i32, Proc>, me: i32, main: i32) {
    for p in tree_children(me) {
        if p.pid == main {
            continue;
        }
        procs.entry(p.pid).or_insert_with(|| Proc {
            pid: p.pid,
            parent: main,
            ..Default::default()
        });
        if out.main_exiting {
            continue;
        }
        if p.is_zombie() && !out.adopted_zombies.contains(&p.pid) {
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
fn sample_states(
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
fn discover(procs: &mut BTreeMap<i32, Proc>, me: i32, t: Duration, cg: Option<&PidsCgroup>) {
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
fn living(procs: &BTreeMap<i32, Proc>, me: i32, cg: Option<&PidsCgroup>) -> Vec<i32> {
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
fn kill_all(
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
            out.killed
                .push((0, "some processes could not be killed within 30 s".into()));
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
