//! Processes (`fork`, `execv`, `waitpid`, `prctl(PR_SET_CHILD_SUBREAPER)`): start, wait, describe.
//!
//! The reference programs call `nix::unistd::fork` themselves so strace shows the fork (clone) and
//! the execve the lab teaches; this module holds what comes around them.

use crate::error::{Error, Result};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

/// Path of another ipclab binary installed beside the running one (target/debug/...).
pub fn sibling_binary(name: &str) -> Result<PathBuf> {
    let me = std::env::current_exe().map_err(|e| Error::io(&e, "readlink", "/proc/self/exe"))?;
    let dir = me
        .parent()
        .ok_or_else(|| Error::runtime("current executable has no directory"))?;
    let path = dir.join(name);
    if !path.exists() {
        return Err(Error::sys(Errno::ENOENT, "find binary", path.display()));
    }
    Ok(path)
}

/// Argument vector for `execv`, built before `fork` so the child allocates nothing.
pub fn argv<S: AsRef<str>>(args: &[S]) -> Result<Vec<CString>> {
    args.iter()
        .map(|a| {
            CString::new(a.as_ref()).map_err(|_| {
                Error::usage(format!("argument contains a NUL byte: {:?}", a.as_ref()))
            })
        })
        .collect()
}

/// Reports `execv` failure from child to parent through a close-on-exec pipe: the parent reads
/// EOF when the exec succeeded (the kernel closed the write end) or the child's errno otherwise.
/// Without it a parent about to block in `open()` on a FIFO would wait forever for a child that
/// never started.
pub struct ExecGate {
    read: OwnedFd,
    write: OwnedFd,
}

impl ExecGate {
    pub fn new() -> Result<ExecGate> {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::sys(e, "pipe2", "exec gate"))?;
        Ok(ExecGate { read, write })
    }

    /// In the child after fork: `execv(path, argv)`; on failure writes errno to the gate and
    /// `_exit(127)`. Never returns.
    pub fn exec(self, path: &CString, argv: &[CString]) -> ! {
        drop(self.read);
        let err = match nix::unistd::execv(path, argv) {
            Err(e) => e,
            Ok(never) => match never {},
        };
        let code = (err as i32).to_ne_bytes();
        // Safety: plain write(2) and _exit(2) on our own fd; no allocation, no unwinding.
        unsafe {
            libc::write(self.write.as_raw_fd(), code.as_ptr().cast(), code.len());
            libc::_exit(127)
        }
    }

    /// In the child after fork, when a step before exec failed: reports `err` as exec would
    /// and `_exit(127)`. Never returns.
    pub fn fail(self, err: Errno) -> ! {
        drop(self.read);
        let code = (err as i32).to_ne_bytes();
        // Safety: plain write(2) and _exit(2) on our own fd; no allocation, no unwinding.
        unsafe {
            libc::write(self.write.as_raw_fd(), code.as_ptr().cast(), code.len());
            libc::_exit(127)
        }
    }

    /// In the parent after fork: Ok once the child has exec'd; if exec failed, reaps the child
    /// and returns the errno as an error naming `path`.
    pub fn wait_exec(self, child: Pid, path: &str) -> Result<()> {
        match self.exec_errno()? {
            None => Ok(()),
            Some(errno) => {
                let _ = wait_for(child);
                Err(Error::sys(errno, "execv", path))
            }
        }
    }

    /// In the parent after fork: None once the child has exec'd, or the errno of its failed
    /// exec (the child is left for the caller to reap).
    pub fn exec_errno(self) -> Result<Option<Errno>> {
        drop(self.write);
        let mut buf = [0u8; 4];
        let mut file = std::fs::File::from(self.read);
        let n = loop {
            match file.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(&e, "read", "exec gate")),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(Errno::from_raw(i32::from_ne_bytes(buf))))
    }
}

/// `waitpid(pid, 0)`, restarted on EINTR.
pub fn wait_for(pid: Pid) -> Result<WaitStatus> {
    loop {
        match waitpid(pid, None) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys(e, "waitpid", pid)),
            Ok(st) => return Ok(st),
        }
    }
}

/// `waitpid(-1, WNOHANG)` until nothing is left to reap: the loop a SIGCHLD handler needs,
/// because one SIGCHLD may stand for many deaths (standard signals do not queue).
pub fn reap_all_nohang() -> Vec<(Pid, WaitStatus)> {
    let mut reaped = Vec::new();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return reaped,
            Err(Errno::EINTR) => continue,
            Err(_) => return reaped,
            Ok(st) => {
                if let Some(pid) = st.pid() {
                    reaped.push((pid, st));
                }
            }
        }
    }
}

static SPAWNS: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Held while starting a child (`Command::spawn`), so that `freeze_spawns` never misses one: a
/// process stopping everything it started takes the write side and lists its descendants
/// knowing no new child is half-made.
pub fn spawning() -> std::sync::RwLockReadGuard<'static, ()> {
    SPAWNS.read().unwrap_or_else(|e| e.into_inner())
}

/// Waits for starts under way to finish and stops any new one, for the rest of the process's
/// life (the guard is leaked: whoever calls this is about to exit).
pub fn freeze_spawns() {
    std::mem::forget(SPAWNS.write().unwrap_or_else(|e| e.into_inner()));
}

/// Ends a forked child that could not do its job: one line on stderr, then `_exit`, so no atexit
/// handler or stdio buffer of the parent runs twice.
pub fn die_in_child(err: &Error, code: i32) -> ! {
    let line = format!("{err}\n");
    // Safety: write(2) on fd 2 and _exit(2); nothing of the parent's state is touched.
    unsafe {
        libc::write(2, line.as_ptr().cast(), line.len());
        libc::_exit(code)
    }
}

/// What `ps` would call the outcome: "exited with status 0", "killed by SIGKILL".
pub fn describe(status: &WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => {
            tf!("exited with status {code}", "a fini avec le statut {code}")
        }
        WaitStatus::Signaled(_, sig, core) => tf!(
            "killed by {}{}",
            "a été tué par {}{}",
            sig.as_str(),
            match (*core, crate::lang::fr()) {
                (false, _) => "",
                (true, false) => " (core dumped)",
                (true, true) => " (image mémoire écrite)",
            }
        ),
        WaitStatus::Stopped(_, sig) => tf!("stopped by {}", "a été stoppé par {}", sig.as_str()),
        WaitStatus::Continued(_) => tf!("continued", "a repris"),
        WaitStatus::StillAlive => tf!("still running", "tourne encore"),
        other => format!("{other:?}"),
    }
}

/// Exit status a shell would show: the code, or 128 + signal number.
pub fn shell_status(status: &WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, code) => *code,
        WaitStatus::Signaled(_, sig, _) => 128 + *sig as i32,
        _ => 1,
    }
}

/// `prctl(PR_SET_CHILD_SUBREAPER, 1)`: orphans among our descendants are re-parented to us
/// instead of to PID 1, so we can reap them.
pub fn set_child_subreaper() -> Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| Error::sys(e, "prctl", "PR_SET_CHILD_SUBREAPER"))
}

pub fn clear_child_subreaper() -> Result<()> {
    nix::sys::prctl::set_child_subreaper(false)
        .map_err(|e| Error::sys(e, "prctl", "PR_SET_CHILD_SUBREAPER 0"))
}

pub fn is_child_subreaper() -> bool {
    nix::sys::prctl::get_child_subreaper().unwrap_or(false)
}

/// `kill(pid, sig)`, ESRCH (already gone) counting as done.
pub fn signal(pid: Pid, sig: Signal) -> Result<()> {
    match nix::sys::signal::kill(pid, sig) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(Error::sys(e, "kill", format!("{pid} {}", sig.as_str()))),
    }
}

/// `pidfd_open(pid)`: a descriptor that becomes readable when the process exits. Unlike a pid,
/// it cannot be recycled for another process while we hold it.
pub fn pidfd_open(pid: Pid) -> Result<OwnedFd> {
    // Safety: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(Error::sys(Errno::last(), "pidfd_open", pid));
    }
    // Safety: the kernel just gave us this descriptor; nobody else owns it.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) })
}

/// Waits up to `timeout` for each of our children to exit (a pidfd turns readable when it does),
/// reaping those that do. Returns (reaped, still running). For a subreaper: an adopted orphan may
/// have closed its output (we saw end of file) yet not be a zombie yet.
pub fn reap_children_within(timeout: std::time::Duration) -> (Vec<(Pid, WaitStatus)>, Vec<Pid>) {
    let deadline = std::time::Instant::now() + timeout;
    let me = std::process::id() as i32;
    let mut reaped = reap_all_nohang();
    let mut running = Vec::new();
    for child in crate::inspect::children(me) {
        let pid = Pid::from_raw(child.pid);
        let Ok(fd) = pidfd_open(pid) else { continue };
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let exited = crate::signals::poll_fds(&[std::os::fd::AsFd::as_fd(&fd)], Some(left))
            .map(|r| r.first() == Some(&true))
            .unwrap_or(false);
        if !exited {
            running.push(pid);
            continue;
        }
        if let Ok(st) = waitpid(pid, None) {
            reaped.push((pid, st));
        }
    }
    (reaped, running)
}

/// `eprintln!` as one write(2): processes sharing a stderr pipe then never interleave inside a
/// line (`eprintln!` itself may write a line in several pieces).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        let mut line = format!($($arg)*);
        line.push('\n');
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    }};
}

/// Tag printed in front of stderr lines so output can be compared with `ps`: `[main 4242]`.
pub fn tag(role: &str) -> String {
    format!("[{role} {}]", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_names_signals_symbolically() {
        let p = Pid::from_raw(1);
        assert_eq!(describe(&WaitStatus::Exited(p, 3)), "exited with status 3");
        assert_eq!(
            describe(&WaitStatus::Signaled(p, Signal::SIGKILL, false)),
            "killed by SIGKILL"
        );
        assert_eq!(
            shell_status(&WaitStatus::Signaled(p, Signal::SIGKILL, false)),
            137
        );
    }
}
