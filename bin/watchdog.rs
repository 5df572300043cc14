//! Lab 3 — watchdog: an independent supervisor that starts the main server and K secondaries
//! itself (so it is the parent of all of them and can reap and restart any), learns of every
//! death from SIGCHLD (a waitpid(-1, WNOHANG) loop, so coalesced signals lose nothing), and of
//! every hang from its own control channel — a heartbeat table in its own shared-memory segment,
//! never the servers' data FIFOs. SIGTERM or SIGINT: secondaries stopped first, then main, each
//! reaped, segment unlinked, FIFOs removed, exit 0. Every event is one JSON line in --events.
//!
//! Syscalls, in order: openat(/dev/shm/TABLE, O_CREAT|O_EXCL) + ftruncate + mmap, the same for
//! the data segment main and the secondaries share, mknodat(FIFO) x 2K, rt_sigaction(SIGCHLD, SIGTERM, SIGINT), clone + execve per server, then poll on the
//! self-pipe; on SIGCHLD wait4(-1, WNOHANG) until 0; on a hang kill(SIGTERM) (+ SIGCONT for a
//! stopped process), kill(SIGKILL) after the grace; on SIGTERM the orderly shutdown.
//!
//! Try: target/debug/watchdog --secondaries 2 --heartbeat-ms 50 --hang-ms 300 --events /tmp/ev
//!
//! strace shows:
//!   clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, ...) = PID
//!   --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_KILLED, si_pid=PID, ...} ---
//!   wait4(-1, [{WIFSIGNALED(s) && WTERMSIG(s) == SIGKILL}], WNOHANG, NULL) = PID
//!   kill(PID, SIGTERM) = 0
//!   unlink("/dev/shm/ipclab-0-PID-XXXXXXXX") = 0

use clap::{Parser, ValueEnum};
use ipclab::error::{Error, Result};
use ipclab::heartbeat::{now_ms, Table};
use ipclab::process::{self, tag, ExecGate};
use ipclab::shm::Segment;
use ipclab::signals::SignalPipe;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::{fork, ForkResult, Pid};
use rand::RngExt;
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Lab 3: a watchdog that starts, reaps, restarts and stops its servers")]
struct Args {
    /// Number of secondary servers.
    #[arg(long, value_name = "K", default_value_t = 2, allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..=16))]
    secondaries: u32,
    /// How often each server writes its heartbeat.
    #[arg(long, value_name = "P", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    heartbeat_ms: u64,
    /// A server silent this long is hung: SIGTERM, grace, SIGKILL, restart.
    #[arg(long, value_name = "T", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    hang_ms: u64,
    /// Between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    term_grace_ms: u64,
    /// Restarts of one server allowed per window before giving up on it.
    #[arg(long, default_value_t = 5)]
    max_restarts: u32,
    #[arg(long, default_value_t = 10_000)]
    window_ms: u64,
    /// JSON-lines event log (created 0600, appended).
    #[arg(long, value_name = "PATH")]
    events: PathBuf,
    /// Directory for the FIFO pairs (default: a fresh private one).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Which servers to supervise: lab 3's main + K secondaries, or lab 4's dispatcher + K workers.
    #[arg(long, value_enum, default_value = "lab3")]
    serve: Serve,
    /// Lab 4: each request's processing time in the workers.
    #[arg(long, default_value_t = 0)]
    work_ms: u64,
    /// Demonstrate the mistake of 3.b: send control messages through the data FIFOs.
    #[arg(long, value_enum)]
    fault: Option<Fault>,
    /// Log every heartbeat seen as a `beat` event (for `ipclab trace 3`'s chart: the beats go
    /// through shared memory, which strace cannot see).
    #[arg(long)]
    log_beats: bool,
    /// Lab 4: run this command as the dispatcher instead of the reference one (split like a
    /// shell would, then `--workers K --dir DIR` appended). It gets no heartbeat table: crashes
    /// are still restarted, hangs are not detected.
    #[arg(long, value_name = "CMD")]
    dispatcher: Option<String>,
    /// Lab 4: the same for each worker (`--id I --dir DIR --work-ms W` appended).
    #[arg(long, value_name = "CMD")]
    worker: Option<String>,
    /// Run the given commands as this uid (the grader's box: we hold CAP_SETUID for it, under
    /// another uid, so the implementation's processes can neither signal nor trace us).
    #[arg(long, value_name = "UID", requires = "dispatcher")]
    role_uid: Option<u32>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Serve {
    Lab3,
    Lab4,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Fault {
    /// Order a hung secondary to restart through its own ping FIFO instead of signalling it.
    ControlOverData,
}

/// One supervised server.
struct Server {
    role: String,
    slot: usize,
    pid: Option<Pid>,
    argv: Vec<String>,
    /// Start times of recent restarts (crash-loop detection).
    restarts: VecDeque<u64>,
    /// A restart waiting for its backoff to pass.
    restart_at: Option<u64>,
    /// When it died or was found hung: the restart's latency runs from here to the first beat.
    down_since: Option<u64>,
    started_at: u64,
    /// SIGKILL due at this time (after SIGTERM for a hang).
    kill_at: Option<u64>,
    gave_up: bool,
    /// It writes heartbeats into our table (a command given with --dispatcher/--worker does not).
    beats: bool,
    /// The last heartbeat logged (--log-beats).
    logged_beat: u64,
    /// The uid it runs as, when not ours (a given command under --role-uid).
    run_as: Option<u32>,
}

struct Events {
    log: ipclab::evlog::Writer,
}

impl Events {
    fn log(
        &mut self,
        event: &str,
        role: &str,
        pid: Option<Pid>,
        status: Option<i32>,
        latency: Option<u64>,
    ) {
        self.log_at(now_ms(), event, role, pid, status, latency)
    }

    /// `ts_ms` is CLOCK_MONOTONIC in ms: comparable with any other process's reading of that
    /// clock (a grader's kill() time, a server's heartbeat).
    fn log_at(
        &mut self,
        ts: u64,
        event: &str,
        role: &str,
        pid: Option<Pid>,
        status: Option<i32>,
        latency: Option<u64>,
    ) {
        // Lab 3's log is version 0 of the event log (no `v`, the name in `event`).
        let e = ipclab::evlog::Event {
            v: 0,
            ev: event.to_string(),
            ts_ms: Some(ts),
            role: Some(role.to_string()),
            pid: pid.map(|p| p.as_raw() as i64),
            status: status.map(i64::from),
            latency_ms: latency,
            ..Default::default()
        };
        // One write per line: a reader never sees half an event.
        let line = self.log.write(&e).unwrap_or_else(|_| e.line());
        ipclab::say!("{} {}", tag("watchdog"), line);
    }
}

fn main() {
    ipclab::args::main(run)
}

fn run(a: &Args) -> Result<i32> {
    if a.heartbeat_ms >= a.hang_ms {
        return Err(Error::usage(format!(
            "--heartbeat-ms {} must be shorter than --hang-ms {}: a healthy server would look hung",
            a.heartbeat_ms, a.hang_ms
        )));
    }
    if a.serve != Serve::Lab4 && (a.dispatcher.is_some() || a.worker.is_some()) {
        return Err(Error::usage("--dispatcher and --worker need --serve lab4"));
    }
    // Checked before anything is created: a bad command leaves nothing behind.
    let split = |given: &Option<String>, flag: &str| -> Result<Option<Vec<String>>> {
        given
            .as_ref()
            .map(|cmd| match shlex::split(cmd) {
                Some(words) if !words.is_empty() => Ok(words),
                _ => Err(Error::usage(format!(
                    "--{flag} {cmd:?}: not a command (empty, or unbalanced quotes)"
                ))),
            })
            .transpose()
    };
    let (dispatcher_cmd, worker_cmd) = (
        split(&a.dispatcher, "dispatcher")?,
        split(&a.worker, "worker")?,
    );
    let main_bin = process::sibling_binary("server-main")?;
    let sec_bin = process::sibling_binary("server-secondary")?;
    let private;
    let dir: PathBuf = match &a.dir {
        Some(d) => {
            ipclab::fifo::check_dir(d)?;
            d.clone()
        }
        None => {
            private = ipclab::fifo::private_dir()?;
            private.path().to_path_buf()
        }
    };
    let log = ipclab::evlog::Writer::open(&a.events)
        .map_err(|e| Error::io(&e, "open", a.events.display()).into_usage())?;
    let mut ev = Events { log };

    let k = a.secondaries as usize;
    let mut table = Table::create(&ipclab::shm::unique_name("ipclab"), k + 1)?;
    // Lab 3's data segment (lab 1's kind), where main publishes its pid and round for the
    // secondaries. Ours to create and unlink: it must outlive any restart of main.
    let mut data = match a.serve {
        Serve::Lab3 => Some(Segment::create(
            &ipclab::shm::unique_name("ipclab-data"),
            4096,
        )?),
        Serve::Lab4 => None,
    };
    let data_name = data
        .as_ref()
        .map(|d| d.name().to_string())
        .unwrap_or_default();
    let mut fifos = Vec::new();
    for i in (1..=k).filter(|_| a.serve == Serve::Lab3) {
        fifos.push(
            ipclab::fifo::FifoPair::create(&dir, &format!("ping-{i}"), &format!("pong-{i}"))
                .map_err(|e| e.into_usage())?,
        );
    }
    // Handlers before any child exists: no death can go unnoticed.
    let mut sigs = SignalPipe::new(&[Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT])?;

    let common = |bin: &Path, slot: usize| {
        vec![
            bin.display().to_string(),
            "--table".into(),
            table.name().to_string(),
            "--slot".into(),
            slot.to_string(),
            "--heartbeat-ms".into(),
            a.heartbeat_ms.to_string(),
        ]
    };
    // A reference server beats into the table; a given command is run as it is.
    let role_cmd = |given: &Option<Vec<String>>, reference: &str, slot: usize| -> Result<_> {
        match given {
            None => Ok((common(&process::sibling_binary(reference)?, slot), true)),
            Some(words) => Ok((words.clone(), false)),
        }
    };
    let mut servers = Vec::new();
    if a.serve == Serve::Lab4 {
        let dir_s = dir.display().to_string();
        let (mut argv, beats) = role_cmd(&dispatcher_cmd, "dispatcher", 0)?;
        argv.extend([
            "--workers".into(),
            k.to_string(),
            "--dir".into(),
            dir_s.clone(),
        ]);
        servers.push(Server::new("dispatcher", 0, argv, beats));
        servers[0].run_as = a.role_uid.filter(|_| !beats);
        for i in 1..=k {
            let (mut argv, beats) = role_cmd(&worker_cmd, "worker", i)?;
            argv.extend([
                "--id".into(),
                i.to_string(),
                "--dir".into(),
                dir_s.clone(),
                "--work-ms".into(),
                a.work_ms.to_string(),
            ]);
            servers.push(Server::new(&format!("worker-{i}"), i, argv, beats));
            if let Some(s) = servers.last_mut() {
                s.run_as = a.role_uid.filter(|_| !beats);
            }
        }
    }
    let mut argv = common(&main_bin, 0);
    argv.extend([
        "--dir".into(),
        dir.display().to_string(),
        "--secondaries".into(),
        k.to_string(),
        "--data".into(),
        data_name.clone(),
    ]);
    if a.serve == Serve::Lab3 {
        servers.push(Server::new("main", 0, argv, true));
    }
    for (i, pair) in fifos.iter().enumerate() {
        let mut argv = common(&sec_bin, i + 1);
        argv.extend([
            "--ping".into(),
            pair.ping().display().to_string(),
            "--pong".into(),
            pair.pong().display().to_string(),
            "--data".into(),
            data_name.clone(),
        ]);
        servers.push(Server::new(
            &format!("secondary-{}", i + 1),
            i + 1,
            argv,
            true,
        ));
    }
    // 3.a: the watchdog starts every server itself, so it is the parent that can reap them all.
    for s in servers.iter_mut() {
        start(s, &table, &mut ev)?;
    }

    let mut rng = rand::rng();
    loop {
        let now = now_ms();
        let next = servers
            .iter()
            .flat_map(|s| [s.restart_at, s.kill_at])
            .flatten()
            .chain([now + a.heartbeat_ms])
            .min()
            .unwrap_or(now + a.heartbeat_ms);
        for sig in sigs.wait(Some(Duration::from_millis(next.saturating_sub(now))))? {
            match sig {
                Signal::SIGCHLD => {
                    for (pid, st) in process::reap_all_nohang() {
                        if let Some(s) = servers.iter_mut().find(|s| s.pid == Some(pid)) {
                            exited(s, st, a, &mut ev, &mut rng);
                        }
                    }
                }
                _ => {
                    let objects = (&mut table, data.as_mut(), fifos);
                    return shutdown(&mut servers, objects, a, &mut ev, &mut sigs);
                }
            }
        }
        let now = now_ms();
        for s in servers.iter_mut() {
            if s.restart_at.is_some_and(|t| now >= t) {
                s.restart_at = None;
                start(s, &table, &mut ev)?;
            }
            if let (Some(pid), Some(t)) = (s.pid, s.kill_at) {
                if now >= t {
                    s.kill_at = None;
                    process::signal(pid, Signal::SIGKILL)?;
                }
            }
            check_heartbeat(s, &table, a, &mut ev, &dir)?;
        }
    }
}

impl Server {
    fn new(role: &str, slot: usize, argv: Vec<String>, beats: bool) -> Server {
        Server {
            role: role.into(),
            slot,
            pid: None,
            argv,
            restarts: VecDeque::new(),
            restart_at: None,
            down_since: None,
            started_at: 0,
            kill_at: None,
            gave_up: false,
            beats,
            logged_beat: 0,
            run_as: None,
        }
    }
}

/// fork + execve of one server; its slot is cleared first so its first heartbeat is its own.
fn start(s: &mut Server, table: &Table, ev: &mut Events) -> Result<()> {
    table.clear(s.slot);
    let argv = process::argv(&s.argv)?;
    let gate = ExecGate::new()?;
    // Safety: single-threaded; the child only runs execv (or reports and _exits).
    let pid = match unsafe { fork() } {
        Err(e) => return Err(Error::sys(e, "fork", &s.role)),
        Ok(ForkResult::Child) => {
            if let Some(uid) = s.run_as {
                if let Err((_, e)) = ipclab::sandbox::become_uid(uid) {
                    gate.fail(e)
                }
            }
            gate.exec(&argv[0], &argv)
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    gate.wait_exec(pid, &s.argv[0])?;
    s.pid = Some(pid);
    s.started_at = now_ms();
    s.kill_at = None;
    ev.log("start", &s.role, Some(pid), None, None);
    if let (false, Some(down)) = (s.beats, s.down_since) {
        // No heartbeat to wait for: restarted once it runs the new program.
        s.down_since = None;
        let now = now_ms();
        ev.log("restart", &s.role, Some(pid), None, Some(now - down));
    }
    Ok(())
}

/// A server died (we reaped it): log it, then restart it now, later (crash loop), or never.
fn exited(s: &mut Server, st: WaitStatus, a: &Args, ev: &mut Events, rng: &mut impl RngExt) {
    let now = now_ms();
    ev.log(
        "exit",
        &s.role,
        s.pid,
        Some(process::shell_status(&st)),
        None,
    );
    s.pid = None;
    s.kill_at = None;
    s.down_since.get_or_insert(now);
    while s.restarts.front().is_some_and(|t| now - t > a.window_ms) {
        s.restarts.pop_front();
    }
    if a.max_restarts > 0 && s.restarts.len() as u32 >= a.max_restarts {
        s.gave_up = true;
        ev.log("give-up", &s.role, None, None, None);
        return;
    }
    // The first restart after a crash is immediate; repeated ones back off, with jitter so
    // that servers crashing together do not restart in lockstep.
    let delay = match s.restarts.len() {
        0 => 0,
        n => (50u64 << n.min(6)).min(2000) + rng.random_range(0..50),
    };
    s.restarts.push_back(now);
    s.restart_at = Some(now + delay);
}

/// No heartbeat for T: hung. SIGTERM (SIGCONT too, as a stopped process would keep it pending),
/// then SIGKILL after the grace; the SIGCHLD that follows restarts it.
fn check_heartbeat(
    s: &mut Server,
    table: &Table,
    a: &Args,
    ev: &mut Events,
    dir: &Path,
) -> Result<()> {
    let Some(pid) = s.pid.filter(|_| s.beats) else {
        return Ok(());
    };
    let now = now_ms();
    let last = table.last(s.slot);
    if a.log_beats && last > s.logged_beat && last >= s.started_at {
        s.logged_beat = last;
        ev.log_at(last, "beat", &s.role, Some(pid), None, None);
    }
    if let Some(down) = s.down_since {
        // The replacement's own first beat (not the last beats of the one being replaced).
        if s.started_at >= down && last >= s.started_at && last > 0 {
            s.down_since = None;
            // Stamped with the replacement's first heartbeat, not with when we noticed it.
            let first = table.first(s.slot).max(s.started_at);
            ev.log_at(
                first,
                "restart",
                &s.role,
                Some(pid),
                None,
                Some(first.saturating_sub(down)),
            );
        }
    }
    let since = if last >= s.started_at {
        last
    } else {
        s.started_at
    };
    if s.kill_at.is_some() || now.saturating_sub(since) <= a.hang_ms {
        return Ok(());
    }
    ev.log("hang", &s.role, Some(pid), None, None);
    s.down_since = Some(now);
    if a.fault == Some(Fault::ControlOverData) && s.slot > 0 {
        // 3.b, the wrong way: an order through the data FIFO. A frozen reader never drains it,
        // and it lands between main's pings.
        let path = dir.join(format!("ping-{}", s.slot));
        let sent = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags_nonblock()
            .open(&path)
            .and_then(|mut f| f.write(b"RESTART\n"));
        ipclab::say!(
            "{} FAULT control-over-data: {} RESTART into {}; nothing reads it",
            tag("watchdog"),
            sent.map(|_| "wrote").unwrap_or("failed to write"),
            path.display()
        );
        s.kill_at = Some(u64::MAX);
        return Ok(());
    }
    process::signal(pid, Signal::SIGTERM)?;
    process::signal(pid, Signal::SIGCONT)?;
    s.kill_at = Some(now + a.term_grace_ms);
    Ok(())
}

/// Secondaries first, then main: each SIGTERM'd, reaped (SIGKILL after the grace), then the
/// segment and the FIFOs removed.
fn shutdown(
    servers: &mut [Server],
    (table, data, fifos): (
        &mut Table,
        Option<&mut Segment>,
        Vec<ipclab::fifo::FifoPair>,
    ),
    a: &Args,
    ev: &mut Events,
    sigs: &mut SignalPipe,
) -> Result<i32> {
    ev.log(
        "shutdown",
        "watchdog",
        Some(nix::unistd::getpid()),
        None,
        None,
    );
    // Secondaries first (slots 1..), then main (slot 0).
    let n = servers.len();
    for group in [1..n, 0..1] {
        for s in &servers[group.clone()] {
            if let Some(pid) = s.pid {
                // Already dead and not yet reaped (ESRCH is not possible for a zombie): fine.
                let _ = process::signal(pid, Signal::SIGTERM);
                let _ = process::signal(pid, Signal::SIGCONT);
            }
        }
        let deadline = now_ms() + a.term_grace_ms;
        while servers[group.clone()].iter().any(|s| s.pid.is_some()) {
            let now = now_ms();
            if now >= deadline {
                for pid in servers[group.clone()].iter().filter_map(|s| s.pid) {
                    let _ = process::signal(pid, Signal::SIGKILL);
                }
            }
            let wait = if now >= deadline {
                None
            } else {
                Some(Duration::from_millis(deadline - now))
            };
            sigs.wait(wait)?;
            // Any server may be reaped here, not only this group's: one that died on its own
            // meanwhile (a SIGTERM sent to the whole process group) must not be waited for
            // again, or this loop would wait for a SIGCHLD that already came.
            for (pid, st) in process::reap_all_nohang() {
                if let Some(s) = servers.iter_mut().find(|s| s.pid == Some(pid)) {
                    ev.log(
                        "exit",
                        &s.role,
                        Some(pid),
                        Some(process::shell_status(&st)),
                        None,
                    );
                    s.pid = None;
                }
            }
        }
    }
    table.unlink()?;
    if let Some(d) = data {
        d.unlink()?;
    }
    for f in fifos {
        f.remove()?;
    }
    ev.log(
        "exit",
        "watchdog",
        Some(nix::unistd::getpid()),
        Some(0),
        None,
    );
    Ok(0)
}

trait OpenExt {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl OpenExt for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::custom_flags(self, libc::O_NONBLOCK)
    }
}
