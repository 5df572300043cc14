//! LD_PRELOAD shim for `ipclab grade --race`: perturbs a program's interleaving, whatever its
//! language, by sleeping a short seeded random time before and after the calls where IPC races
//! live — fork, vfork, posix_spawn, the wait family, open on FIFOs, and read/write/send/recv on
//! anything that is not a regular file (pipes, FIFOs, sockets, terminals).
//!
//! What it promises: for a seed (IPCLAB_RACE_SEED) the same delay schedule along each process
//! lineage; not the same interleaving (the kernel still schedules). What it cannot reach:
//! statically linked programs, and calls glibc makes internally (fopen, printf's own write go
//! through internal symbols). Without IPCLAB_RACE_SEED it adds nothing.
//!
//! On namespace hosts made with `ipclab hosts up --race SEED`, sshd sets IPCLAB_RACE_SEED,
//! LD_PRELOAD and IPCLAB_RACE_LOG for every session (it passes no environment of the client's):
//! each program started there is perturbed and notes itself in the log.
//!
//! Delays: 1 call in 8 sleeps 0-10 ms, the others 0-200 µs, with clock_nanosleep only.
//! vfork is run as fork (a wrapper cannot return twice into a shared stack).

#![allow(clippy::missing_safety_doc)]

use libc::{c_char, c_int, c_void, id_t, idtype_t, mode_t, pid_t, siginfo_t, size_t, ssize_t};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);
static STATE: AtomicU64 = AtomicU64::new(0);

#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = init;

extern "C" fn init() {
    // Safety: getenv on a NUL-terminated name; the result is read before any setenv can run.
    let v = unsafe { libc::getenv(c"IPCLAB_RACE_SEED".as_ptr()) };
    if v.is_null() {
        return;
    }
    // Safety: getenv returned a NUL-terminated string.
    let s = unsafe { std::ffi::CStr::from_ptr(v) };
    let seed: u64 = s.to_str().ok().and_then(|t| t.parse().ok()).unwrap_or(0);
    // Each exec'd program of the lineage mixes in how deep it is (parent's draws are its own).
    STATE.store(mix(seed ^ 0x5EED), Ordering::SeqCst);
    ENABLED.store(true, Ordering::SeqCst);
    note_perturbed();
}

/// With IPCLAB_RACE_LOG (hosts made by `ipclab hosts up --race`, where sshd sets the
/// environment of every session), one line per perturbed program: `HOST PID COMM`, appended
/// in one write (lines of concurrent programs never tear), never through a symbolic link.
fn note_perturbed() {
    // Safety: getenv, uname, open, write and close on buffers we own; nothing here allocates.
    unsafe {
        let path = libc::getenv(c"IPCLAB_RACE_LOG".as_ptr());
        if path.is_null() {
            return;
        }
        let mut line = [0u8; 160];
        let mut n = 0;
        let mut put = |b: &[u8]| {
            for &c in b {
                if n < line.len() - 1 {
                    line[n] = c;
                    n += 1;
                }
            }
        };
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) == 0 {
            let host = std::ffi::CStr::from_ptr(u.nodename.as_ptr());
            put(host.to_bytes());
        }
        put(b" ");
        let mut digits = [0u8; 12];
        let (mut pid, mut k) = (libc::getpid() as u32, digits.len());
        loop {
            k -= 1;
            digits[k] = b'0' + (pid % 10) as u8;
            pid /= 10;
            if pid == 0 {
                break;
            }
        }
        put(&digits[k..]);
        put(b" ");
        let mut comm = [0u8; 17];
        libc::prctl(libc::PR_GET_NAME, comm.as_mut_ptr());
        let len = comm.iter().position(|c| *c == 0).unwrap_or(16);
        put(&comm[..len]);
        put(b"\n");
        let fd = libc::open(
            path,
            libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600,
        );
        if fd >= 0 {
            libc::write(fd, line.as_ptr().cast(), n);
            libc::close(fd);
        }
    }
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn next() -> u64 {
    let mut cur = STATE.load(Ordering::Relaxed);
    loop {
        let new = mix(cur);
        match STATE.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return new,
            Err(c) => cur = c,
        }
    }
}

fn delay() {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let x = next();
    let ns = if x.is_multiple_of(8) {
        (x >> 8) % 10_000_000
    } else {
        (x >> 8) % 200_000
    };
    let ts = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    };
    // Safety: relative sleep on a timespec we own; EINTR just ends the delay early.
    unsafe { libc::clock_nanosleep(libc::CLOCK_MONOTONIC, 0, &ts, std::ptr::null_mut()) };
}

/// After fork, parent and child draw from different, reproducible streams.
fn split(child: bool) {
    let s = STATE.load(Ordering::Relaxed);
    STATE.store(
        mix(s ^ if child { 0xC41D } else { 0xBA5E }),
        Ordering::Relaxed,
    );
}

/// Looks up the next definition of `name` (libc's), once.
macro_rules! real {
    ($name:literal, $ty:ty) => {{
        static ADDR: AtomicUsize = AtomicUsize::new(0);
        let mut a = ADDR.load(Ordering::Relaxed);
        if a == 0 {
            // Safety: dlsym with a NUL-terminated symbol name.
            a = unsafe { libc::dlsym(libc::RTLD_NEXT, concat!($name, "\0").as_ptr().cast()) }
                as usize;
            ADDR.store(a, Ordering::Relaxed);
        }
        // Safety: the symbol has this C signature in glibc.
        unsafe { std::mem::transmute::<usize, $ty>(a) }
    }};
}

fn is_regular(fd: c_int) -> bool {
    // Safety: fstat into a struct we own.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFREG
    }
}

fn path_is_fifo(dirfd: c_int, path: *const c_char) -> bool {
    // Safety: fstatat with the caller's path (valid C string by the caller's contract).
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstatat(dirfd, path, &mut st, 0) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFIFO
    }
}

#[no_mangle]
pub unsafe extern "C" fn fork() -> pid_t {
    delay();
    let f = real!("fork", extern "C" fn() -> pid_t);
    let r = f();
    split(r == 0);
    delay();
    r
}

#[no_mangle]
pub unsafe extern "C" fn vfork() -> pid_t {
    fork()
}

macro_rules! spawn_like {
    ($name:ident, $sym:literal) => {
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            pid: *mut pid_t,
            path: *const c_char,
            fa: *const c_void,
            attr: *const c_void,
            argv: *const *mut c_char,
            envp: *const *mut c_char,
        ) -> c_int {
            delay();
            type Spawn = extern "C" fn(
                *mut pid_t,
                *const c_char,
                *const c_void,
                *const c_void,
                *const *mut c_char,
                *const *mut c_char,
            ) -> c_int;
            let f = real!($sym, Spawn);
            let r = f(pid, path, fa, attr, argv, envp);
            delay();
            r
        }
    };
}
spawn_like!(posix_spawn, "posix_spawn");
spawn_like!(posix_spawnp, "posix_spawnp");

#[no_mangle]
pub unsafe extern "C" fn wait(status: *mut c_int) -> pid_t {
    delay();
    let f = real!("wait", extern "C" fn(*mut c_int) -> pid_t);
    let r = f(status);
    delay();
    r
}

#[no_mangle]
pub unsafe extern "C" fn waitpid(pid: pid_t, status: *mut c_int, options: c_int) -> pid_t {
    delay();
    let f = real!("waitpid", extern "C" fn(pid_t, *mut c_int, c_int) -> pid_t);
    let r = f(pid, status, options);
    delay();
    r
}

#[no_mangle]
pub unsafe extern "C" fn wait3(status: *mut c_int, options: c_int, ru: *mut libc::rusage) -> pid_t {
    delay();
    let f = real!(
        "wait3",
        extern "C" fn(*mut c_int, c_int, *mut libc::rusage) -> pid_t
    );
    let r = f(status, options, ru);
    delay();
    r
}

#[no_mangle]
pub unsafe extern "C" fn wait4(
    pid: pid_t,
    status: *mut c_int,
    options: c_int,
    ru: *mut libc::rusage,
) -> pid_t {
    delay();
    let f = real!(
        "wait4",
        extern "C" fn(pid_t, *mut c_int, c_int, *mut libc::rusage) -> pid_t
    );
    let r = f(pid, status, options, ru);
    delay();
    r
}

#[no_mangle]
pub unsafe extern "C" fn waitid(
    idtype: idtype_t,
    id: id_t,
    info: *mut siginfo_t,
    options: c_int,
) -> c_int {
    delay();
    let f = real!(
        "waitid",
        extern "C" fn(idtype_t, id_t, *mut siginfo_t, c_int) -> c_int
    );
    let r = f(idtype, id, info, options);
    delay();
    r
}

// open's mode is variadic in C; on x86-64 and aarch64 Linux reading it as a third argument is
// what glibc's own wrapper effectively does when O_CREAT is absent (the value is then unused).
macro_rules! open_like {
    ($name:ident, $sym:literal) => {
        #[no_mangle]
        pub unsafe extern "C" fn $name(path: *const c_char, flags: c_int, mode: mode_t) -> c_int {
            let fifo = ENABLED.load(Ordering::Relaxed) && path_is_fifo(libc::AT_FDCWD, path);
            if fifo {
                delay();
            }
            let f = real!($sym, extern "C" fn(*const c_char, c_int, mode_t) -> c_int);
            let r = f(path, flags, mode);
            if fifo {
                delay();
            }
            r
        }
    };
}
open_like!(open, "open");
open_like!(open64, "open64");

macro_rules! openat_like {
    ($name:ident, $sym:literal) => {
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            dirfd: c_int,
            path: *const c_char,
            flags: c_int,
            mode: mode_t,
        ) -> c_int {
            let fifo = ENABLED.load(Ordering::Relaxed) && path_is_fifo(dirfd, path);
            if fifo {
                delay();
            }
            let f = real!(
                $sym,
                extern "C" fn(c_int, *const c_char, c_int, mode_t) -> c_int
            );
            let r = f(dirfd, path, flags, mode);
            if fifo {
                delay();
            }
            r
        }
    };
}
openat_like!(openat, "openat");
openat_like!(openat64, "openat64");

macro_rules! io_like {
    ($name:ident, $sym:literal, ($($arg:ident: $t:ty),*), $ret:ty) => {
        #[no_mangle]
        pub unsafe extern "C" fn $name(fd: c_int, $($arg: $t),*) -> $ret {
            let ipc = ENABLED.load(Ordering::Relaxed) && !is_regular(fd);
            if ipc {
                delay();
            }
            let f = real!($sym, extern "C" fn(c_int, $($t),*) -> $ret);
            let r = f(fd, $($arg),*);
            if ipc {
                delay();
            }
            r
        }
    };
}
io_like!(read, "read", (buf: *mut c_void, n: size_t), ssize_t);
io_like!(write, "write", (buf: *const c_void, n: size_t), ssize_t);
io_like!(readv, "readv", (iov: *const libc::iovec, n: c_int), ssize_t);
io_like!(writev, "writev", (iov: *const libc::iovec, n: c_int), ssize_t);
io_like!(send, "send", (buf: *const c_void, n: size_t, flags: c_int), ssize_t);
io_like!(recv, "recv", (buf: *mut c_void, n: size_t, flags: c_int), ssize_t);
