//! Daemons (`flock`, `close`, `open("/dev/null")`): the pieces around the double fork.
//!
//! The double fork, `setsid`, `umask` and `chdir` stay in `bin/daemon.rs`, where the lab shows them;
//! this module holds the pidfile lock and the descriptor clean-up.

use crate::error::{Error, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A pidfile held with `flock(LOCK_EX)` for the daemon's whole life. The lock, not the file's
/// existence, says "running": the kernel drops it when the process dies, so a pidfile left by a
/// crash (stale) is recognised and taken over.
pub struct Pidfile {
    path: PathBuf,
    lock: Flock<File>,
}

/// What a pidfile says about its daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidState {
    Running(i32),
    /// No lock is held; `Some(pid)` when a stale file names a dead process.
    NotRunning(Option<i32>),
}

impl Pidfile {
    /// Opens (creating, 0600) and locks `path`, then writes our pid. `Err(Running(pid))`-style
    /// refusal is returned as `Ok(Err(pid))` so callers can word it.
    pub fn acquire(path: &Path) -> Result<std::result::Result<Pidfile, i32>> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_CLOEXEC,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )
        .map_err(|e| Error::sys(e, "open", path.display()))?;
        let file = File::from(fd);
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                return Ok(Err(read_pid(&mut file).unwrap_or(0)))
            }
            Err((_, e)) => return Err(Error::sys(e, "flock", path.display())),
        };
        let pid = format!("{}\n", std::process::id());
        let w = |e: std::io::Error| Error::io(&e, "write", path.display());
        lock.set_len(0).map_err(w)?;
        lock.rewind().map_err(w)?;
        lock.write_all(pid.as_bytes()).map_err(w)?;
        Ok(Ok(Pidfile {
            path: path.to_path_buf(),
            lock,
        }))
    }

    /// Removes the file while still holding the lock, so no other start can slip in between.
    pub fn remove(self) -> Result<()> {
        let r = std::fs::remove_file(&self.path)
            .map_err(|e| Error::io(&e, "unlink", self.path.display()));
        drop(self.lock);
        r
    }
}

/// Whether a daemon holds `path`'s lock, without taking it for long.
pub fn probe(path: &Path) -> Result<PidState> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(PidState::NotRunning(None))
        }
        Err(e) => return Err(Error::io(&e, "open", path.display())),
    };
    probe_file(file).map_err(|e| Error::sys(e, "flock", path.display()))
}

/// `probe` of a pidfile already open (the grader opens a box's without following links).
pub fn probe_file(mut file: File) -> std::result::Result<PidState, Errno> {
    let pid = read_pid(&mut file);
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_unlocked_on_drop) => Ok(PidState::NotRunning(pid)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(PidState::Running(pid.unwrap_or(0))),
        Err((_, e)) => Err(e),
    }
}

fn read_pid(file: &mut File) -> Option<i32> {
    let mut s = String::new();
    file.read_to_string(&mut s).ok()?;
    s.trim().parse().ok().filter(|&p: &i32| p > 0)
}

/// The launcher's side of a daemon's start: a readiness pipe, a fork whose child runs
/// `detach` (the middle process: `become_daemon`, then the daemon's work), the middle process
/// reaped, and what the daemon wrote on the pipe ("ok PID" or its error; empty if it died
/// first). `detach` ends the child itself (`_exit`); were it to return, the child exits 1. In
/// the launcher, `detach` and what it owns (a listening socket) are dropped. Single-threaded
/// callers only.
pub fn launch(detach: impl FnOnce(std::os::fd::OwnedFd)) -> Result<String> {
    use nix::unistd::{fork, ForkResult};
    let (ready_r, ready_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| Error::sys(e, "pipe2", "readiness pipe"))?;
    std::io::stdout().flush().ok();
    // Safety: single-threaded (the caller's promise); the child runs `detach`, never returns.
    let middle = match unsafe { fork() } {
        Err(e) => return Err(Error::sys(e, "fork", "")),
        Ok(ForkResult::Child) => {
            drop(ready_r);
            detach(ready_w);
            // Safety: _exit from the forked child.
            unsafe { libc::_exit(1) }
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(ready_w);
    drop(detach);
    crate::process::wait_for(middle)?;
    let mut answer = String::new();
    let _ = File::from(ready_r).read_to_string(&mut answer);
    Ok(answer)
}

/// The middle process of a daemon's start (lab 6's discipline; lab 9's fingerd too): setsid, a
/// second fork whose parent `_exit`s (the grandchild, no session leader, can never acquire a
/// terminal), umask 0 (files get exactly the modes asked for), chdir / (no mounted file system
/// pinned), every descriptor above 2 closed but `ready` and `keep`, 0-2 on /dev/null. Returns
/// in the grandchild, the daemon; a failure there is told through `ready` (the launcher's
/// readiness pipe: stderr is gone) and ends it with status 1. Single-threaded callers only.
pub fn become_daemon(ready: &std::os::fd::OwnedFd, keep: &[RawFd]) {
    use nix::unistd::{fork, setsid, ForkResult};
    if let Err(e) = setsid() {
        crate::process::die_in_child(&Error::sys(e, "setsid", ""), 1);
    }
    // Safety: single-threaded (the caller's promise); the middle process only _exits.
    match unsafe { fork() } {
        Err(e) => crate::process::die_in_child(&Error::sys(e, "fork", "second"), 1),
        // Safety: _exit: the launcher reaps the middle process.
        Ok(ForkResult::Parent { .. }) => unsafe { libc::_exit(0) },
        Ok(ForkResult::Child) => {}
    }
    nix::sys::stat::umask(Mode::empty());
    let fail = |e: &Error| -> ! {
        let msg = e.to_string();
        // Safety: write(2) of our own buffer (far below PIPE_BUF: it arrives whole), _exit.
        unsafe {
            libc::write(ready.as_raw_fd(), msg.as_ptr().cast(), msg.len());
            libc::_exit(1)
        }
    };
    if let Err(e) = nix::unistd::chdir("/") {
        fail(&Error::sys(e, "chdir", "/"));
    }
    let mut kept = vec![ready.as_raw_fd()];
    kept.extend_from_slice(keep);
    close_fds_except(&kept);
    if let Err(e) = stdio_to_dev_null() {
        fail(&e);
    }
}

/// Closes every descriptor above 2 except `keep`: a daemon must not hold its launcher's files
/// (a terminal, a pipe someone waits on for EOF, a mounted filesystem).
pub fn close_fds_except(keep: &[RawFd]) {
    let fds: Vec<RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(rd) => rd
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => (3..1024).collect(),
    };
    for fd in fds.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
        // Safety: closing descriptors we own; the one read_dir used is already closed (EBADF).
        unsafe { libc::close(fd) };
    }
}

/// Points fds 0, 1 and 2 at /dev/null: a daemon has no terminal, and a write to a closed
/// fd 1 would land in whatever file next gets descriptor 1.
pub fn stdio_to_dev_null() -> Result<()> {
    let null = nix::fcntl::open("/dev/null", OFlag::O_RDWR, Mode::empty())
        .map_err(|e| Error::sys(e, "open", "/dev/null"))?;
    for target in 0..=2 {
        // Safety: dup2 onto the standard descriptors, which we mean to replace.
        if unsafe { libc::dup2(null.as_raw_fd(), target) } < 0 {
            return Err(Error::sys(
                Errno::last(),
                "dup2",
                format!("/dev/null -> {target}"),
            ));
        }
    }
    Ok(())
}

/// A log opened for appending (0600, close-on-exec): each line lands at the end, whoever else
/// appends.
pub fn open_log(path: &Path) -> Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::io(&e, "open", path.display()))
}

/// One line, stamped with the UTC time.
pub fn log_line(log: &mut File, msg: &str) {
    let _ = writeln!(log, "{} {msg}", utc_now());
}

/// `2026-11-22T21:35:05.123Z`, from the system clock (gmtime_r, no time-zone database).
pub fn utc_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as libc::time_t;
    // Safety: gmtime_r fills the tm we own from a valid time_t.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::gmtime_r(&secs, &mut tm);
        tm
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        now.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lock says "running" while held and "stale" once dropped, whatever the file holds.
    #[test]
    fn pidfile_lock_decides_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.pid");
        assert_eq!(probe(&path).unwrap(), PidState::NotRunning(None));
        let pf = Pidfile::acquire(&path).unwrap().unwrap();
        let me = std::process::id() as i32;
        assert_eq!(probe(&path).unwrap(), PidState::Running(me));
        assert_eq!(Pidfile::acquire(&path).unwrap().err(), Some(me));
        drop(pf);
        assert_eq!(probe(&path).unwrap(), PidState::NotRunning(Some(me)));
        let pf = Pidfile::acquire(&path).unwrap().unwrap();
        pf.remove().unwrap();
        assert!(!path.exists());
    }
}
