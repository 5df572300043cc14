//! Stopping a walkthrough part-way without leaving anything: stdout closed (`ipclab lab 3 | head`,
//! EPIPE), Ctrl-C, SIGTERM or SIGHUP. Whatever it was doing, every process it started is killed
//! and reaped (it is their subreaper, so even a daemon is still below it), the shm objects they
//! made are unlinked, its scratch directory goes, and it exits 1 (EPIPE) or 128+signal.
//!
//! Everything a walkthrough and its programs write to a temporary place lands in one scratch
//! directory, because TMPDIR points there for the whole run: removing it removes every FIFO
//! directory, strace log and trace directory at once, without a list to keep in step.

use crate::error::{Error, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

struct State {
    scratch: PathBuf,
    shm_before: Vec<String>,
}

static STATE: OnceLock<State> = OnceLock::new();
/// Commands that undo what a step started on another machine, by ticket (see `undo_on_stop`).
static UNDO: std::sync::Mutex<Vec<(u64, Vec<String>)>> = std::sync::Mutex::new(Vec::new());
static TICKETS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Safety net for each undo command (an ssh to a host that answers at once).
const UNDO_WITHIN: Duration = Duration::from_secs(10);

/// What a step started where this process cannot kill it (a server started over ssh on
/// another machine): `argv` undoes it if the walkthrough is stopped while the returned guard
/// lives. The step drops the guard once it has undone it itself.
pub fn undo_on_stop(argv: Vec<String>) -> Undo {
    let ticket = TICKETS.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut u) = UNDO.lock() {
        u.push((ticket, argv));
    }
    Undo(ticket)
}

/// While it lives, `stop` runs its command (see `undo_on_stop`).
pub struct Undo(u64);

impl Undo {
    /// The command, for a step that undoes early what it started.
    pub fn argv(&self) -> Vec<String> {
        UNDO.lock()
            .ok()
            .and_then(|u| u.iter().find(|(t, _)| *t == self.0).map(|(_, a)| a.clone()))
            .unwrap_or_default()
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        // A step cut short by the stop (its command killed, an error returned) has not undone
        // anything: `stop` runs the command.
        let received = RECEIVED.get().is_some_and(|r| r.load(Ordering::SeqCst));
        if STOPPING.load(Ordering::SeqCst) || received {
            return;
        }
        if let Ok(mut u) = UNDO.lock() {
            u.retain(|(t, _)| *t != self.0);
        }
    }
}

/// Runs the undo commands still registered, each within UNDO_WITHIN; how many succeeded.
fn undo_all() -> usize {
    let pending: Vec<Vec<String>> = match UNDO.lock() {
        Ok(mut u) => u.drain(..).map(|(_, a)| a).collect(),
        Err(_) => return 0,
    };
    let mut done = 0;
    for argv in pending {
        let Some((prog, args)) = argv.split_first() else {
            continue;
        };
        // std's Command, not crate::process's: its spawns are frozen by now.
        let child = std::process::Command::new(prog)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let Ok(mut child) = child else { continue };
        let fd = crate::process::pidfd_open(nix::unistd::Pid::from_raw(child.id() as i32)).ok();
        if let Some(fd) = &fd {
            use std::os::fd::AsFd;
            let _ = crate::signals::poll_fds(&[fd.as_fd()], Some(UNDO_WITHIN));
        }
        if child.try_wait().ok().flatten().is_none() {
            let _ = child.kill();
        }
        if child.wait().is_ok_and(|s| s.success()) {
            done += 1;
        }
    }
    done
}
static STOPPING: AtomicBool = AtomicBool::new(false);
/// Set by the handler itself, at delivery: a stop is coming even before the signal thread runs.
/// The programs got the same Ctrl-C (it goes to the whole group), and one that ends cleanly on
/// it could otherwise let the walkthrough end first, with 1 instead of 130.
static RECEIVED: OnceLock<std::sync::Arc<AtomicBool>> = OnceLock::new();

/// The run's scratch directory; removed when dropped (the normal end).
pub struct Scratch(Option<tempfile::TempDir>);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(d) = self.0.take() {
            let _ = d.close();
        }
    }
}

/// Arms the stop: handlers first (a Ctrl-C from now on is caught), then the scratch directory
/// under the caller's TMPDIR, which becomes TMPDIR. Call once, before any thread or child.
pub fn arm(shm_before: Vec<String>) -> Result<Scratch> {
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| Error::io(&e, "sigaction", "SIGINT"))?;
    let received = RECEIVED.get_or_init(Default::default);
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, std::sync::Arc::clone(received))
            .map_err(|e| Error::io(&e, "sigaction", "SIGINT"))?;
    }
    let dir = tempfile::Builder::new()
        .prefix(&format!("ipclab-walk-{}-", std::process::id()))
        .tempdir()
        .map_err(|e| Error::io(&e, "mkdir", std::env::temp_dir().display()))?;
    let _ = STATE.set(State {
        scratch: dir.path().to_path_buf(),
        shm_before,
    });
    // Safety of set_var: still single-threaded here (the signal thread starts below).
    std::env::set_var("TMPDIR", dir.path());
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // println! panics when stdout is closed: that is the reader leaving, not a bug.
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") {
            stop(1, "stdout was closed");
        }
        default(info);
    }));
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            let name = nix::sys::signal::Signal::try_from(sig)
                .map(|s| s.as_str())
                .unwrap_or("a signal");
            stop(128 + sig, &format!("{name} received"));
        }
    });
    Ok(Scratch(Some(dir)))
}

/// Parks the caller for good once a stop is under way: nothing new may start meanwhile.
pub fn check() {
    let received = || RECEIVED.get().is_some_and(|r| r.load(Ordering::SeqCst));
    while STOPPING.load(Ordering::SeqCst) || received() {
        // The signal thread is about to stop (it exits the process): wait for it.
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// Kills and reaps what the walkthrough started, removes what they made, exits with `code`.
pub fn stop(code: i32, why: &str) -> ! {
    if STOPPING.swap(true, Ordering::SeqCst) {
        // The other thread is stopping: it exits the process.
        loop {
            std::thread::park();
        }
    }
    // From now on the main thread's prints go nowhere instead of failing again.
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // Safety: dup2 onto fd 1, which std's stdout keeps using as a plain number.
        unsafe {
            libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 1);
        }
    }
    // No child half-started from here on: every one is already a descendant, or never will be.
    crate::process::freeze_spawns();
    let me = std::process::id() as i32;
    let mut killed = 0;
    // Repeat until three scans in a row find nothing: a child may have been forking while we
    // looked, or an orphan (a daemon's middle process) may be on its way to us, its subreaper,
    // while its dying parent still names it; 50 ms between quiet scans lets that settle.
    let mut quiet = 0;
    for _ in 0..100 {
        let left = crate::inspect::descendants(me);
        let running: Vec<_> = left.iter().filter(|p| !p.is_zombie()).collect();
        if running.is_empty() && crate::process::reap_all_nohang().is_empty() && left.is_empty() {
            quiet += 1;
            if quiet == 3 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        quiet = 0;
        for p in &running {
            if crate::process::signal(
                nix::unistd::Pid::from_raw(p.pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .is_ok()
            {
                killed += 1;
            }
        }
        let _ = crate::process::reap_children_within(Duration::from_millis(500));
    }
    // What steps started on other machines: after the local kills (an ssh session killed
    // here leaves its remote program running).
    let mut removed = undo_all();
    if let Some(st) = STATE.get() {
        removed += crate::shm::remove_orphaned("ipclab", &st.shm_before, true)
            .iter()
            .filter(|(_, _, r)| r.is_ok())
            .count();
        if std::fs::remove_dir_all(&st.scratch).is_ok() {
            removed += 1;
        }
    }
    let line = format!(
        "ipclab: {why}: walkthrough stopped ({killed} process(es) killed, {removed} object(s) removed)\n"
    );
    // Safety: write(2) on fd 2; a closed stderr is ignored.
    unsafe {
        libc::write(2, line.as_ptr().cast(), line.len());
    }
    std::process::exit(code)
}
