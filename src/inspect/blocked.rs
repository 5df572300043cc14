//! Where a process is blocked, as `cat /proc/PID/syscall /proc/PID/wchan` and `ls -l
//! /proc/PID/fd` would tell: the system call, the file it is about (the path an open names, the
//! target of the fd a read or write uses) and which way. Reading another process's arguments
//! (/proc/PID/syscall, its memory for a path) needs ptrace rights over it: the grader has them.

use std::os::unix::fs::FileExt;

/// A process caught blocked in a system call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub pid: i32,
    /// The call's name (`openat`, `read`, `wait4`...), or `syscall N`.
    pub call: String,
    /// The file: the path an open names, or what the fd of a read/write points to.
    pub file: Option<String>,
    /// Which way the file is being opened or used.
    pub way: Option<Way>,
    /// The kernel function it sleeps in (/proc/PID/wchan), e.g. `fifo_open`, `pipe_read`.
    pub wchan: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    Read,
    Write,
    Both,
}

/// What `pid` is blocked in now; None when it runs, is gone, or cannot be read.
pub fn blocked(pid: i32) -> Option<Blocked> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    let mut f = text.split_whitespace();
    let nr: i64 = f.next()?.parse().ok()?;
    if nr < 0 {
        return None;
    }
    let args: Vec<u64> = f
        .take(6)
        .filter_map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
        .collect();
    let arg = |i: usize| args.get(i).copied().unwrap_or(0);
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    let fd_target = |fd: u64| {
        std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
            .ok()
            .map(|p| p.display().to_string())
    };
    let open_way = |flags: u64| match flags as i32 & libc::O_ACCMODE {
        libc::O_RDONLY => Way::Read,
        libc::O_WRONLY => Way::Write,
        _ => Way::Both,
    };
    let (call, file, way) = match nr {
        libc::SYS_openat => ("openat", path_at(pid, arg(1)), Some(open_way(arg(2)))),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_open => ("open", path_at(pid, arg(0)), Some(open_way(arg(1)))),
        libc::SYS_read | libc::SYS_readv | libc::SYS_recvfrom | libc::SYS_recvmsg => {
            (name(nr), fd_target(arg(0)), Some(Way::Read))
        }
        libc::SYS_write | libc::SYS_writev | libc::SYS_sendto | libc::SYS_sendmsg => {
            (name(nr), fd_target(arg(0)), Some(Way::Write))
        }
        libc::SYS_accept | libc::SYS_accept4 | libc::SYS_connect | libc::SYS_flock => {
            (name(nr), fd_target(arg(0)), None)
        }
        _ => (name(nr), None, None),
    };
    let call = if call.is_empty() {
        format!("syscall {nr}")
    } else {
        call.to_string()
    };
    Some(Blocked {
        pid,
        call,
        file,
        way,
        wchan: wchan.trim().to_string(),
    })
}

fn name(nr: i64) -> &'static str {
    match nr {
        libc::SYS_read => "read",
        libc::SYS_readv => "readv",
        libc::SYS_write => "write",
        libc::SYS_writev => "writev",
        libc::SYS_recvfrom => "recvfrom",
        libc::SYS_recvmsg => "recvmsg",
        libc::SYS_sendto => "sendto",
        libc::SYS_sendmsg => "sendmsg",
        libc::SYS_accept => "accept",
        libc::SYS_accept4 => "accept4",
        libc::SYS_connect => "connect",
        libc::SYS_flock => "flock",
        libc::SYS_wait4 => "wait4",
        libc::SYS_waitid => "waitid",
        libc::SYS_ppoll => "ppoll",
        libc::SYS_pselect6 => "pselect6",
        libc::SYS_epoll_pwait => "epoll_pwait",
        libc::SYS_futex => "futex",
        libc::SYS_clock_nanosleep => "clock_nanosleep",
        libc::SYS_nanosleep => "nanosleep",
        libc::SYS_rt_sigsuspend => "rt_sigsuspend",
        libc::SYS_rt_sigtimedwait => "rt_sigtimedwait",
        libc::SYS_msgrcv => "msgrcv",
        libc::SYS_msgsnd => "msgsnd",
        libc::SYS_semop => "semop",
        libc::SYS_semtimedop => "semtimedop",
        libc::SYS_mq_timedreceive => "mq_timedreceive",
        libc::SYS_mq_timedsend => "mq_timedsend",
        #[cfg(target_arch = "x86_64")]
        libc::SYS_poll => "poll",
        #[cfg(target_arch = "x86_64")]
        libc::SYS_select => "select",
        #[cfg(target_arch = "x86_64")]
        libc::SYS_epoll_wait => "epoll_wait",
        #[cfg(target_arch = "x86_64")]
        libc::SYS_pause => "pause",
        _ => "",
    }
}

/// The NUL-terminated path at `addr` in `pid`'s memory.
fn path_at(pid: i32, addr: u64) -> Option<String> {
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut buf = vec![0u8; 4096];
    let n = mem.read_at(&mut buf, addr).ok()?;
    let end = buf[..n].iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child blocked opening a FIFO for writing is seen there: openat, the path, the way.
    #[test]
    fn blocked_open_of_a_fifo_is_seen() {
        let _forks = crate::FORK_MTX.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("ping");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // Safety: the child only calls open(2) (blocking until a reader comes) and _exit.
        let child = match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => unsafe {
                libc::open(c_path.as_ptr(), libc::O_WRONLY);
                libc::_exit(0)
            },
            nix::unistd::ForkResult::Parent { child } => child,
        };
        // Observation, with a safety net: the child reaches the open within moments.
        let mut seen = None;
        for _ in 0..500 {
            if let Some(b) = blocked(child.as_raw()) {
                if b.call == "openat" || b.call == "open" {
                    seen = Some(b);
                    break;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
        nix::sys::wait::waitpid(child, None).unwrap();
        let b = seen.expect("the child was never seen blocked in open");
        assert_eq!(b.file.as_deref(), fifo.to_str());
        assert_eq!(b.way, Some(Way::Write));
    }
}
