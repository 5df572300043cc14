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

mod capture;
mod start;
mod tree;
mod watch;
use capture::*;
pub use capture::{clip_line, LINE_CAP};
use start::*;
use tree::*;
use watch::*;

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
    /// Join this network namespace (a `sandbox::NetNs` the caller holds) instead of a fresh one.
    pub join_netns: Option<i32>,
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

impl DirEvent {
    /// One line for a student: "created ping (a FIFO)", "closed pong after writing".
    pub fn describe(&self) -> String {
        match self {
            DirEvent::Created { name, fifo } => {
                let what = match fifo {
                    Some(true) => tf!(" (a FIFO)", " (un FIFO)"),
                    Some(false) => tf!(" (not a FIFO)", " (pas un FIFO)"),
                    None => tf!(
                        " (gone before it could be looked at)",
                        " (disparu avant d'avoir pu être examiné)"
                    ),
                };
                tf!("created {name}{what}", "création de {name}{what}")
            }
            DirEvent::Opened { name } => tf!("opened {name}", "ouverture de {name}"),
            DirEvent::ClosedWrite { name } => tf!(
                "closed {name}, opened for writing",
                "fermeture de {name}, ouvert en écriture"
            ),
            DirEvent::ClosedNoWrite { name } => tf!(
                "closed {name}, opened read-only",
                "fermeture de {name}, ouvert en lecture seule"
            ),
            DirEvent::Deleted { name } => tf!("removed {name}", "suppression de {name}"),
        }
    }
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
    /// At the time limit, where each live process was blocked (before it was killed); files
    /// in the watched directory are named `DIR/...`.
    pub blocked: Vec<crate::inspect::Blocked>,
    /// main's stdout and stderr pipes as /proc/PID/fd names them (`pipe:[INODE]`).
    pub stdio_pipes: Vec<String>,
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

/// Runs `l` to its end; `script` acts on the tree while it lives (see `Script`).
pub fn run_scripted(
    l: &Launch,
    mut script: Option<&mut dyn Script>,
) -> Result<Outcome, HarnessError> {
    let mut live = Live::new(l, start_main(l)?);
    live.track(l, &mut script);
    Ok(live.finish(l))
}

/// main started in its box, exec'd, traced if it could be.
struct Started {
    out: Outcome,
    start: Instant,
    out_r: std::fs::File,
    err_r: std::fs::File,
    sigs: crate::signals::SignalPipe,
    inotify: Option<Watch>,
    cgroup: Option<PidsCgroup>,
    child: Pid,
    helper: Option<Pid>,
    traced: bool,
    ipc_ns: Option<OwnedFd>,
}

/// Forks main into its box (the child runs the sandbox's plan, then execs), waits at the gate
/// for the box to be ready, seizes main, lets it exec.
fn start_main(l: &Launch) -> Result<Started, HarnessError> {
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
    out.stdio_pipes = fd_names(&[&out_r, &err_r]);
    let sigs = crate::signals::SignalPipe::new(&[
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

    let cgroup = box_cgroup(l, &mut out);
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
    say_namespaces(l, user_pid_ns, &mut out);
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
        netns: (l.netns || user_pid_ns) && l.join_netns.is_none(),
        join_netns: l.join_netns,
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
    let helper = ns_main.map(|_| child);
    let child = ns_main.unwrap_or(child);
    HELPER.store(
        helper.map_or(0, |h| h.as_raw()),
        std::sync::atomic::Ordering::SeqCst,
    );
    let traced = seize(l, child, &mut out);
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
    Ok(Started {
        out,
        start,
        out_r,
        err_r,
        sigs,
        inotify,
        cgroup,
        child,
        helper,
        traced,
        ipc_ns,
    })
}

/// The pids cgroup of a root grader's box (what the report says of it either way).
fn box_cgroup(l: &Launch, out: &mut Outcome) -> Option<PidsCgroup> {
    if nix::unistd::geteuid().is_root() {
        match PidsCgroup::create(l.max_procs, l.run_no) {
            Ok(cg) => {
                out.protections.push(tf!(
                    "processes: at most {} ({}); the whole box killed through it",
                    "processus : au plus {} ({}) ; toute la boîte tuée par lui",
                    l.max_procs,
                    cg.describe(),
                ));
                Some(cg)
            }
            Err(why) => {
                out.protections.push(tf!(
                    "processes: RLIMIT_NPROC only ({why}); the box is killed process by process",
                    "processus : RLIMIT_NPROC seul ({why}) ; la boîte est tuée processus par processus"
                ));
                None
            }
        }
    } else {
        out.protections.push(tf!(
            "processes: RLIMIT_NPROC (no cgroup as non-root); the box is killed process by process",
            "processus : RLIMIT_NPROC (pas de cgroup sans root) ; la boîte est tuée processus par processus"
        ));
        None
    }
}

/// Seizes main with the tree's events (fork, vfork, clone, exec, exit); whether it is traced.
/// What our ends of main's stdout and stderr are, as /proc/PID/fd names them ("pipe:[INODE]"):
/// a daemon still holding one kept a descriptor it inherited.
fn fd_names(files: &[&std::fs::File]) -> Vec<String> {
    files
        .iter()
        .filter_map(|f| {
            std::fs::read_link(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(*f)
            ))
            .ok()
        })
        .map(|p| p.display().to_string())
        .collect()
}

fn seize(l: &Launch, child: Pid, out: &mut Outcome) -> bool {
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
            Err(e) => {
                out.tracking = tf!(
                    "/proc polling (ptrace refused: {e})",
                    "relevé de /proc (ptrace refusé : {e})"
                )
            }
        }
    } else {
        out.tracking = tf!(
            "/proc polling (ptrace not requested)",
            "relevé de /proc (ptrace non demandé)"
        );
    }
    if traced {
        out.tracking = tf!(
            "ptrace (fork/exec/exit events)",
            "ptrace (événements fork/exec/exit)"
        );
    }
    traced
}

/// What the report says of the box's namespaces.
fn say_namespaces(l: &Launch, user_pid_ns: bool, out: &mut Outcome) {
    if l.user_pid_ns && !user_pid_ns {
        out.protections.push(tf!(
            "namespaces: none for this run (untraced, or a daemon must outlive its launcher)",
            "espaces de noms : aucun pour cette exécution (sans trace, ou un démon doit survivre à son lanceur)"
        ));
    }
    if user_pid_ns {
        out.protections.push(tf!(
            "namespaces: user (identity map), PID (the box's own init; kill(-1) reaches only the \
             box), network (loopback only), IPC",
            "espaces de noms : utilisateur (uid inchangés), PID (l'init propre à la boîte ; \
             kill(-1) n'atteint que la boîte), réseau (boucle locale seule), IPC"
        ));
    }
}

/// One run being tracked: what `start_main` made and what the loop keeps of the tree.
struct Live {
    out: Outcome,
    start: Instant,
    out_r: std::fs::File,
    err_r: std::fs::File,
    sigs: crate::signals::SignalPipe,
    inotify: Option<Watch>,
    cgroup: Option<PidsCgroup>,
    child: Pid,
    helper: Option<Pid>,
    traced: bool,
    ipc_ns: Option<OwnedFd>,
    procs: BTreeMap<i32, Proc>,
    threads: BTreeSet<i32>,
    attached: BTreeSet<i32>,
    /// Tracees past their attach stop (main was seized running: it has none).
    resumed: BTreeSet<i32>,
    frozen: BTreeSet<i32>,
    stdout_buf: Vec<u8>,
    deadline: Instant,
    linger_until: Option<Instant>,
    me: i32,
    /// Our children at the last tick (poll mode): those are not adopted from main.
    prev_children: BTreeSet<i32>,
    /// /proc/PID/fd and maps name files as the box sees them: the alias, when the box's view of
    /// the watched directory differs from ours (lab 1's /dev/shm).
    dir_prefix: Option<String>,
    /// Output pipes at end of file are no longer polled: a closed stdout must not wake us forever.
    open_pipes: [bool; 2],
}

impl Live {
    fn new(l: &Launch, s: Started) -> Live {
        let Started {
            out,
            start,
            out_r,
            err_r,
            sigs,
            inotify,
            cgroup,
            child,
            helper,
            traced,
            ipc_ns,
        } = s;

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
        let threads: BTreeSet<i32> = BTreeSet::new();
        let mut attached: BTreeSet<i32> = BTreeSet::new();
        attached.insert(child.as_raw());
        // Tracees past their attach stop (main was seized running: it has none).
        let mut resumed: BTreeSet<i32> = BTreeSet::new();
        resumed.insert(child.as_raw());
        let frozen: BTreeSet<i32> = BTreeSet::new();
        let stdout_buf: Vec<u8> = Vec::new();
        let deadline = start + l.timeout;
        let linger_until: Option<Instant> = None;
        let me = std::process::id() as i32;
        // Our children at the last tick (poll mode): those are not adopted from main.
        let prev_children: BTreeSet<i32> = tree_children(me)
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
        let open_pipes = [true, true];
        Live {
            out,
            start,
            out_r,
            err_r,
            sigs,
            inotify,
            cgroup,
            child,
            helper,
            traced,
            ipc_ns,
            procs,
            threads,
            attached,
            resumed,
            frozen,
            stdout_buf,
            deadline,
            linger_until,
            me,
            prev_children,
            dir_prefix,
            open_pipes,
        }
    }

    /// Until the tree has ended (or was killed): each wake-up reads what woke us, handles
    /// every state change, samples what events do not tell, lets the script act.
    fn track(&mut self, l: &Launch, script: &mut Option<&mut dyn Script>) {
        loop {
            if self.wake(l, script.is_some()) {
                break;
            }
            let (main_was_running, batch_reaped) = self.reap_batch(l);
            self.sample(l, main_was_running, batch_reaped);
            self.act(script);
            if self.ended(l) {
                break;
            }
        }
    }

    /// Sleeps until an event or the next tick; reads output and inotify. True: interrupted.
    fn wake(&mut self, l: &Launch, scripted: bool) -> bool {
        let now = Instant::now();
        // Events wake us (output, self.inotify, SIGCHLD for every ptrace stop and self.child exit); the
        // tick only serves what no event announces: a script's timers, a zombie's grace, and
        // /proc sampling when untraced. Traced with nothing pending, it is long.
        let waiting_zombie = self
            .procs
            .values()
            .any(|p| p.exited.is_some() && !p.gone && !self.threads.contains(&p.pid));
        let tick = if scripted || !self.traced || waiting_zombie || self.out.main_end.is_some() {
            TICK
        } else {
            IDLE_TICK
        };
        let wake = [
            self.deadline,
            self.linger_until.unwrap_or(self.deadline),
            now + tick,
        ]
        .into_iter()
        .min()
        .unwrap_or(now);
        let mut all: Vec<std::os::fd::BorrowedFd<'_>> = vec![self.sigs.fd()];
        if self.open_pipes[0] {
            all.push(self.out_r.as_fd());
        }
        if self.open_pipes[1] {
            all.push(self.err_r.as_fd());
        }
        if let Some(ino) = &self.inotify {
            all.push(ino.as_fd());
        }
        let _ = crate::signals::poll_fds(&all, Some(wake.saturating_duration_since(now)));
        let t = self.start.elapsed();
        let eof = drain_outputs(
            &self.out_r,
            &self.err_r,
            &mut self.stdout_buf,
            &mut self.out,
            l.output_cap,
            t,
        );
        self.open_pipes = [self.open_pipes[0] && !eof[0], self.open_pipes[1] && !eof[1]];
        self.sigs.take();
        if let Some(sig) = crate::signals::interrupted() {
            self.out.interrupted = Some(sig);
            kill_all(
                &mut self.out,
                &mut self.procs,
                &mut self.attached,
                self.me,
                self.cgroup.as_ref(),
                self.start,
                &tf!(
                    "the grader was interrupted",
                    "le correcteur a été interrompu"
                ),
            );
            return true;
        }
        if let Some(ino) = &self.inotify {
            let opened = read_dir_events(
                ino,
                l.watch_dir.as_deref(),
                &l.watch_prefix,
                &mut self.out.dir_events,
            );
            if opened {
                sample_holders(&mut self.procs, self.dir_prefix.as_deref());
            }
        }

        false
    }

    /// Every state change of a tracee or child, handled now; whether main was running before,
    /// and the exits we reaped that were not our children (see `sample`).
    fn reap_batch(&mut self, l: &Launch) -> (bool, Vec<i32>) {
        // Every state change of a tracee or child: handle them all now.
        let mut batch_reaped: Vec<i32> = Vec::new();
        let main_was_running = self.out.main_end.is_none();
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
            let t = self.start.elapsed();
            // The PID-namespace self.helper ended (its namespace is empty): not part of the tree.
            if self.helper.is_some() && st.pid() == self.helper {
                if matches!(st, WaitStatus::Exited(..) | WaitStatus::Signaled(..)) {
                    self.helper = None;
                    HELPER.store(0, std::sync::atomic::Ordering::SeqCst);
                }
                continue;
            }
            // main is stopped at its exit event until `handle` resumes it: the snapshot must be
            // taken before, while its children are still its own.
            if let WaitStatus::PtraceEvent(pid, _, libc::PTRACE_EVENT_EXIT) = st {
                if pid == self.child && !self.out.main_exiting {
                    self.out.main_exiting = true;
                    main_exiting(
                        &mut self.out,
                        &self.procs,
                        &self.threads,
                        self.child.as_raw(),
                    );
                }
            }
            handle(
                st,
                t,
                &mut self.procs,
                &mut self.threads,
                &mut self.attached,
                &mut self.resumed,
                &self.frozen,
                self.dir_prefix.as_deref(),
            );
            // Without ptrace every exit we are told of is a reap by us. One that was not already
            // our self.child, reaped in the batch where main ends, was main's: adopted as a zombie.
            if let (WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _), false) =
                (st, self.traced)
            {
                // Only a process known to be main's own child: one orphaned alive (a refused
                // daemon whose middle process exited) and dying as main ends was ours, not main's.
                let mains = self
                    .procs
                    .get(&pid.as_raw())
                    .is_some_and(|p| p.parent == self.child.as_raw());
                if pid != self.child && !self.prev_children.contains(&pid.as_raw()) && mains {
                    batch_reaped.push(pid.as_raw());
                }
            }
            if let (Some(pid), true) = (
                st.pid(),
                matches!(st, WaitStatus::Exited(..) | WaitStatus::Signaled(..)),
            ) {
                if pid == self.child && self.out.main_end.is_none() {
                    self.out.main_status = Some(st);
                    self.out.main_end = Some(t);
                    main_ended(&mut self.out, &mut self.procs, self.me, self.child.as_raw());
                    self.linger_until = Some(Instant::now() + l.linger);
                }
            }
        }

        (main_was_running, batch_reaped)
    }

    fn sample(&mut self, l: &Launch, main_was_running: bool, batch_reaped: Vec<i32>) {
        if main_was_running && self.out.main_end.is_some() {
            for pid in batch_reaped {
                if !self.out.adopted_zombies.contains(&pid) {
                    self.out.adopted_zombies.push(pid);
                }
            }
        }
        if !self.traced {
            self.prev_children = tree_children(self.me).iter().map(|p| p.pid).collect();
        }
        let t = self.start.elapsed();
        // Traced, every exit is an event: only processes that have exited need watching (for
        // how long they stay zombies), and holders are sampled on each open and exit event.
        // Not on every wake-up: a program printing a line at a time would have us read /proc
        // for each line, on the CPU it needs.
        sample_states(
            &mut self.procs,
            t,
            l.zombie_grace,
            self.out.main_end.is_none(),
            &mut self.out.lingered,
            &self.threads,
            self.traced,
        );
        if !self.traced {
            sample_holders(&mut self.procs, self.dir_prefix.as_deref());
            discover(&mut self.procs, self.me, t, self.cgroup.as_ref());
        }
    }

    /// Frozen processes a fatal signal is pending for are let go; the script acts.
    fn act(&mut self, script: &mut Option<&mut dyn Script>) {
        // A self.frozen process is hung, not stopped: a fatal signal sent to it must still end it.
        self.frozen.retain(|pid| {
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
                t: self.start.elapsed(),
                main: self.child.as_raw(),
                procs: &self.procs,
                main_end: self.out.main_end,
            };
            for action in sc.tick(&view) {
                match action {
                    Action::Signal(pid, sig) => {
                        let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
                    }
                    Action::Freeze(pid) if self.traced => {
                        self.frozen.insert(pid);
                        let _ = ptrace::interrupt(Pid::from_raw(pid));
                    }
                    // Without ptrace the only freeze left is SIGSTOP, which a parent can see.
                    Action::Freeze(pid) => {
                        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGSTOP);
                    }
                }
            }
        }
    }

    /// Whether the run is over: the tree ended after main, or was killed (time limit, linger).
    fn ended(&mut self, l: &Launch) -> bool {
        let now = Instant::now();
        if self.out.main_end.is_some() && l.keep_survivors {
            // Reap the zombies we adopted (a daemon's middle process); keep the rest running.
            for (pid, st) in process::reap_all_nohang() {
                let p = self.procs.entry(pid.as_raw()).or_insert_with(|| Proc {
                    pid: pid.as_raw(),
                    ..Default::default()
                });
                p.gone = true;
                p.status.get_or_insert(raw_status(&st));
            }
            let living = living(&self.procs, self.me, self.cgroup.as_ref());
            self.out.survivors = living
                .into_iter()
                .filter(|p| {
                    *p != self.child.as_raw()
                        && crate::inspect::info(*p).is_some_and(|i| !i.is_zombie())
                })
                .collect();
            if let Some(cg) = &self.cgroup {
                for p in &self.out.survivors {
                    cg.release(*p);
                }
            }
            return true;
        }
        if self.out.main_end.is_some() {
            let living = living(&self.procs, self.me, self.cgroup.as_ref());
            if living.is_empty() && self.attached.is_empty() {
                return true;
            }
            if std::env::var_os("IPCLAB_DEBUG").is_some() {
                eprintln!(
                    "[grade] after main: living {living:?} attached {:?}",
                    self.attached
                );
            }
            if living.is_empty() && !self.traced {
                return true;
            }
            if self.linger_until.is_some_and(|u| now >= u) {
                kill_all(
                    &mut self.out,
                    &mut self.procs,
                    &mut self.attached,
                    self.me,
                    self.cgroup.as_ref(),
                    self.start,
                    &tf!(
                        "still running after main exited",
                        "tournait encore après la fin de main"
                    ),
                );
                return true;
            }
        } else if now >= self.deadline {
            self.out.timed_out = true;
            self.out.blocked = self.blocked_now(l);
            kill_all(
                &mut self.out,
                &mut self.procs,
                &mut self.attached,
                self.me,
                self.cgroup.as_ref(),
                self.start,
                &tf!("killed at the time limit", "tué à la limite de temps"),
            );
            return true;
        }
        false
    }

    /// Where every live process of the tree is blocked, DIR's paths as `DIR/...`.
    fn blocked_now(&self, l: &Launch) -> Vec<crate::inspect::Blocked> {
        let dirs: Vec<String> = [l.watch_alias.as_ref(), l.watch_dir.as_ref()]
            .into_iter()
            .flatten()
            .map(|d| d.display().to_string())
            .collect();
        self.procs
            .values()
            .filter(|p| p.exited.is_none() && !p.gone)
            .filter_map(|p| crate::inspect::blocked(p.pid))
            .map(|mut b| {
                if let Some(f) = &mut b.file {
                    if let Some(rest) = dirs.iter().find_map(|d| f.strip_prefix(d.as_str())) {
                        *f = format!("DIR{rest}");
                    }
                }
                b
            })
            .collect()
    }

    /// What is left to read once the tree has ended; the outcome.
    fn finish(mut self, l: &Launch) -> Outcome {
        crate::sandbox::mark("tree ended");
        // Events queued after the last read (main may have created, opened and exited in between).
        if let Some(ino) = &self.inotify {
            read_dir_events(
                ino,
                l.watch_dir.as_deref(),
                &l.watch_prefix,
                &mut self.out.dir_events,
            );
        }
        // Whatever is left in the pipes (every writer is gone now).
        drain_outputs(
            &self.out_r,
            &self.err_r,
            &mut self.stdout_buf,
            &mut self.out,
            l.output_cap,
            self.start.elapsed(),
        );
        if !self.stdout_buf.is_empty() {
            // A last line without newline; what passed the output cap is dropped too.
            let over = self.out.stdout_bytes.saturating_sub(l.output_cap);
            self.out
                .stdout_lines
                .push((self.start.elapsed(), clip_line(&self.stdout_buf, over)));
        }
        if let Some(cg) = &self.cgroup {
            self.out.refused_forks = cg.refused_forks();
        }
        if let Some(ns) = &self.ipc_ns {
            self.out.sysv_left = crate::sandbox::sysv_objects(ns);
        }

        // The PID namespace's helper: its death kills the namespace's init, and with it whatever
        // escaped the trace in there (CLONE_UNTRACED); then it is reaped.
        if let Some(h) = self.helper {
            let _ = nix::sys::signal::kill(h, Signal::SIGKILL);
            reap_one(h);
            HELPER.store(0, std::sync::atomic::Ordering::SeqCst);
        }
        self.out.procs = self
            .procs
            .into_iter()
            .filter(|(p, _)| !self.threads.contains(p))
            .collect();
        self.out.wall = self.start.elapsed();
        self.out
    }
}
