//! The sixteen mechanisms of lab 7, each as two endpoints — `main` (this process, which creates
//! every object) and `peer` (the process it forks and execs) — exchanging fixed-size messages.
//! Notification is the mechanism's own I/O: a read that blocks, a futex, a semaphore, a lock, a
//! signal; no other handshake is hidden in the hot path.

use crate::error::{Error, Result};
use nix::errno::Errno;
use nix::mqueue;
use nix::sys::socket::{
    self, sockopt, AddressFamily, MsgFlags, SockFlag, SockType, SockaddrIn, UnixAddr,
};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Pipe,
    Fifo,
    UnixStream,
    UnixDgram,
    Socketpair,
    Tcp,
    Udp,
    PosixMq,
    SysvMq,
    ShmFutex,
    ShmSem,
    ShmCondvar,
    ShmSpin,
    Signal,
    Eventfd,
    FileLock,
    File,
}

pub const ALL: [Kind; 17] = [
    Kind::Pipe,
    Kind::Fifo,
    Kind::UnixStream,
    Kind::UnixDgram,
    Kind::Socketpair,
    Kind::Tcp,
    Kind::Udp,
    Kind::PosixMq,
    Kind::SysvMq,
    Kind::ShmFutex,
    Kind::ShmSem,
    Kind::ShmCondvar,
    Kind::ShmSpin,
    Kind::Signal,
    Kind::Eventfd,
    Kind::FileLock,
    Kind::File,
];

/// Largest message the bench sends through any mechanism.
pub const MAX_SIZE: usize = 64 * 1024;

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Pipe => "pipe",
            Kind::Fifo => "fifo",
            Kind::UnixStream => "unix-stream",
            Kind::UnixDgram => "unix-dgram",
            Kind::Socketpair => "socketpair",
            Kind::Tcp => "tcp",
            Kind::Udp => "udp",
            Kind::PosixMq => "posix-mq",
            Kind::SysvMq => "sysv-mq",
            Kind::ShmFutex => "shm-futex",
            Kind::ShmSem => "shm-sem",
            Kind::ShmCondvar => "shm-condvar",
            Kind::ShmSpin => "shm-spin",
            Kind::Signal => "signal",
            Kind::Eventfd => "eventfd",
            Kind::FileLock => "file-lock",
            Kind::File => "file",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        ALL.into_iter().find(|k| k.name() == s)
    }

    /// The largest message it carries here, and why.
    pub fn limit(self) -> (usize, String) {
        let proc_num = |p: &str, dflt: usize| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(dflt)
        };
        match self {
            Kind::Signal => (8, "a sigqueue value (union sigval) is 8 bytes".into()),
            Kind::Eventfd => (
                7,
                "an eventfd is one 8-byte counter that must not be 0: 7 bytes of payload".into(),
            ),
            Kind::Udp => (65507, "a UDP datagram holds at most 65507 bytes".into()),
            Kind::PosixMq => {
                let m = proc_num("/proc/sys/fs/mqueue/msgsize_max", 8192);
                (
                    m,
                    format!(
                        "POSIX queues take at most {m} bytes a message (fs.mqueue.msgsize_max)"
                    ),
                )
            }
            Kind::SysvMq => {
                let m = proc_num("/proc/sys/kernel/msgmax", 8192);
                (
                    m,
                    format!("System V queues take at most {m} bytes a message (kernel.msgmax)"),
                )
            }
            _ => (
                MAX_SIZE,
                format!("the bench sends at most {MAX_SIZE} bytes"),
            ),
        }
    }

    /// Messages that may be in flight in the one-way stream before the peer acknowledges.
    pub fn slots(self, size: usize) -> usize {
        match self {
            // One buffer, one turn: each message must be taken before the next is written.
            Kind::ShmFutex
            | Kind::ShmSem
            | Kind::ShmCondvar
            | Kind::ShmSpin
            | Kind::Eventfd
            | Kind::FileLock
            | Kind::File => 1,
            Kind::PosixMq => 8,
            Kind::SysvMq => (16384 / size.max(1)).clamp(1, 64),
            Kind::Signal => 32,
            // Byte streams and datagram sockets: what fits in about 128 KiB of buffers.
            _ => (128 * 1024 / size.max(1)).clamp(1, 64),
        }
    }
}

/// One side of a channel: fixed-size messages, each send and recv whole.
pub trait Endpoint {
    fn send(&mut self, buf: &[u8]) -> io::Result<()>;
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()>;
}

fn cvt(r: isize) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Read and write ends of byte streams (pipes, FIFOs, stream sockets): loops until whole.
pub struct Stream {
    rd: RawFd,
    wr: RawFd,
    _own: Vec<OwnedFd>,
}

impl Stream {
    fn new(rd: RawFd, wr: RawFd, own: Vec<OwnedFd>) -> Stream {
        Stream { rd, wr, _own: own }
    }
}

impl Endpoint for Stream {
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            // Safety: writing from a live slice to our fd.
            match cvt(unsafe {
                libc::write(self.wr, buf[done..].as_ptr().cast(), buf.len() - done)
            }) {
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            // Safety: reading into a live slice from our fd.
            match cvt(unsafe {
                libc::read(self.rd, buf[done..].as_mut_ptr().cast(), buf.len() - done)
            }) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Connected datagram sockets: one message, one datagram.
pub struct Dgram {
    fd: OwnedFd,
}

impl Endpoint for Dgram {
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        loop {
            match socket::send(self.fd.as_raw_fd(), buf, MsgFlags::empty()) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        loop {
            match socket::recv(self.fd.as_raw_fd(), buf, MsgFlags::empty()) {
                Ok(n) if n == buf.len() => return Ok(()),
                Ok(n) => {
                    return Err(io::Error::other(format!(
                        "datagram of {n} bytes, want {}",
                        buf.len()
                    )))
                }
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Two POSIX message queues, one per direction.
pub struct PosixMq {
    tx: Option<mqueue::MqdT>,
    rx: Option<mqueue::MqdT>,
}

impl PosixMq {
    fn new(tx: mqueue::MqdT, rx: mqueue::MqdT) -> PosixMq {
        PosixMq {
            tx: Some(tx),
            rx: Some(rx),
        }
    }
}

/// nix's queue descriptor does not close itself.
impl Drop for PosixMq {
    fn drop(&mut self) {
        for q in [self.tx.take(), self.rx.take()].into_iter().flatten() {
            let _ = mqueue::mq_close(q);
        }
    }
}

impl Endpoint for PosixMq {
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        loop {
            let Some(tx) = &self.tx else {
                return Err(io::ErrorKind::NotConnected.into());
            };
            match mqueue::mq_send(tx, buf, 0) {
                Ok(()) => return Ok(()),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut prio = 0;
        loop {
            let Some(rx) = &self.rx else {
                return Err(io::ErrorKind::NotConnected.into());
            };
            match mqueue::mq_receive(rx, buf, &mut prio) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// One System V queue, two message types (1: to the peer, 2: to main).
pub struct SysvMq {
    id: i32,
    tx_type: libc::c_long,
    rx_type: libc::c_long,
    msg: Vec<u8>,
}

impl Endpoint for SysvMq {
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        let t = std::mem::size_of::<libc::c_long>();
        self.msg[..t].copy_from_slice(&self.tx_type.to_ne_bytes());
        self.msg[t..t + buf.len()].copy_from_slice(buf);
        loop {
            // Safety: msg holds a long type then buf.len() bytes.
            if unsafe { libc::msgsnd(self.id, self.msg.as_ptr().cast(), buf.len(), 0) } == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let t = std::mem::size_of::<libc::c_long>();
        loop {
            // Safety: msg has room for a long type and buf.len() bytes.
            let n = unsafe {
                libc::msgrcv(
                    self.id,
                    self.msg.as_mut_ptr().cast(),
                    buf.len(),
                    self.rx_type,
                    0,
                )
            };
            match cvt(n) {
                Ok(_) => {
                    buf.copy_from_slice(&self.msg[t..t + buf.len()]);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The shared segment's layout: a header page of words, then one buffer per direction.
/// Words (u32): 0 sequence main->peer, 1 sequence peer->main. Then, at 64 and 128: a
/// pthread_mutex_t and two pthread_cond_t (shm-condvar), or two sem_t (shm-sem).
const HDR: usize = 4096;
const SEG_LEN: usize = HDR + 2 * MAX_SIZE;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Wake {
    Futex,
    Spin,
    Sem,
    Condvar,
}

pub struct Shm {
    seg: crate::shm::Segment,
    wake: Wake,
    /// Which direction this side writes: 0 main->peer, 1 peer->main.
    out: usize,
    seen: u32,
    sent: u32,
}

impl Shm {
    fn word(&self, i: usize) -> &AtomicU32 {
        // Safety: the header page is inside the mapping, 4-aligned, shared by design.
        unsafe { &*(self.seg.as_ptr().add(i * 4) as *const AtomicU32) }
    }
    fn buf(&self, dir: usize) -> *mut u8 {
        // Safety: both buffers lie within SEG_LEN.
        unsafe { self.seg.as_ptr().add(HDR + dir * MAX_SIZE) }
    }
    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        // Safety: offset 64 is inside the header page, aligned for the type.
        unsafe { self.seg.as_ptr().add(64).cast() }
    }
    fn cond(&self, dir: usize) -> *mut libc::pthread_cond_t {
        // Safety: offsets 256 and 512 are inside the header page.
        unsafe { self.seg.as_ptr().add(256 + dir * 256).cast() }
    }
    fn sem(&self, dir: usize) -> *mut libc::sem_t {
        // Safety: offsets 1024 and 1280 are inside the header page.
        unsafe { self.seg.as_ptr().add(1024 + dir * 256).cast() }
    }

    /// Main's side: initialises the synchronisation objects, process-shared.
    fn init(&self) -> Result<()> {
        // Safety: fresh, zeroed shared memory that no other process uses yet.
        unsafe {
            match self.wake {
                Wake::Condvar => {
                    let mut ma: libc::pthread_mutexattr_t = std::mem::zeroed();
                    libc::pthread_mutexattr_init(&mut ma);
                    libc::pthread_mutexattr_setpshared(&mut ma, libc::PTHREAD_PROCESS_SHARED);
                    if libc::pthread_mutex_init(self.mutex(), &ma) != 0 {
                        return Err(Error::runtime("pthread_mutex_init failed"));
                    }
                    let mut ca: libc::pthread_condattr_t = std::mem::zeroed();
                    libc::pthread_condattr_init(&mut ca);
                    libc::pthread_condattr_setpshared(&mut ca, libc::PTHREAD_PROCESS_SHARED);
                    for d in 0..2 {
                        if libc::pthread_cond_init(self.cond(d), &ca) != 0 {
                            return Err(Error::runtime("pthread_cond_init failed"));
                        }
                    }
                }
                Wake::Sem => {
                    for d in 0..2 {
                        if libc::sem_init(self.sem(d), 1, 0) != 0 {
                            return Err(Error::sys(nix::errno::Errno::last(), "sem_init", ""));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn futex(word: &AtomicU32, op: i32, val: u32) {
    // Safety: a futex call on a live, shared, aligned u32.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op,
            val,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

impl Endpoint for Shm {
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        let d = self.out;
        // Safety: the buffer is ours to write until the sequence below hands it over.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), self.buf(d), buf.len()) };
        self.sent = self.sent.wrapping_add(1);
        match self.wake {
            Wake::Futex => {
                self.word(d).store(self.sent, Ordering::Release);
                futex(self.word(d), libc::FUTEX_WAKE, 1);
            }
            Wake::Spin => self.word(d).store(self.sent, Ordering::Release),
            Wake::Sem => {
                self.word(d).store(self.sent, Ordering::Release);
                // Safety: initialised by main before the peer started.
                unsafe { libc::sem_post(self.sem(d)) };
            }
            Wake::Condvar => {
                // Safety: initialised process-shared mutex and condvar.
                unsafe {
                    libc::pthread_mutex_lock(self.mutex());
                    self.word(d).store(self.sent, Ordering::Release);
                    libc::pthread_cond_signal(self.cond(d));
                    libc::pthread_mutex_unlock(self.mutex());
                }
            }
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let d = 1 - self.out;
        let want = self.seen.wrapping_add(1);
        match self.wake {
            Wake::Futex => loop {
                let v = self.word(d).load(Ordering::Acquire);
                if v == want {
                    break;
                }
                futex(self.word(d), libc::FUTEX_WAIT, v);
            },
            Wake::Spin => {
                while self.word(d).load(Ordering::Acquire) != want {
                    std::hint::spin_loop();
                }
            }
            Wake::Sem => loop {
                // Safety: initialised process-shared semaphore.
                if unsafe { libc::sem_wait(self.sem(d)) } == 0 {
                    break;
                }
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            },
            Wake::Condvar => {
                // Safety: initialised process-shared mutex and condvar.
                unsafe {
                    libc::pthread_mutex_lock(self.mutex());
                    while self.word(d).load(Ordering::Acquire) != want {
                        libc::pthread_cond_wait(self.cond(d), self.mutex());
                    }
                    libc::pthread_mutex_unlock(self.mutex());
                }
            }
        }
        self.seen = want;
        // Safety: the other side handed this buffer over with the sequence just seen.
        unsafe { std::ptr::copy_nonoverlapping(self.buf(d), buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }
}

/// sigqueue + sigwaitinfo: the payload rides in the signal's 8-byte value.
pub struct Sig {
    to: libc::pid_t,
    set: libc::sigset_t,
}

fn rt_signal() -> i32 {
    libc::SIGRTMIN()
}

/// Blocks the real-time signal the bench uses, so it queues until sigwaitinfo takes it.
pub fn block_rt_signal() -> libc::sigset_t {
    // Safety: plain sigset manipulation on a local, then sigprocmask on this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, rt_signal());
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

impl Endpoint for Sig {
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut v = [0u8; 8];
        v[..buf.len()].copy_from_slice(buf);
        let val = libc::sigval {
            sival_ptr: u64::from_le_bytes(v) as usize as *mut libc::c_void,
        };
        // Safety: sigqueue to our peer with a plain value.
        if unsafe { libc::sigqueue(self.to, rt_signal(), val) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        loop {
            // Safety: a zeroed siginfo for the kernel to fill; our own blocked set.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            if unsafe { libc::sigwaitinfo(&self.set, &mut info) } < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            // Safety: a queued signal carries si_value.
            let v = unsafe { info.si_value() }.sival_ptr as usize as u64;
            let n = buf.len();
            buf.copy_from_slice(&v.to_le_bytes()[..n]);
            return Ok(());
        }
    }
}

/// Two eventfds, one per direction; 7 bytes of payload above a marker bit.
pub struct Event {
    tx: OwnedFd,
    rx: OwnedFd,
}

impl Endpoint for Event {
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut v = [0u8; 8];
        v[1..1 + buf.len()].copy_from_slice(buf);
        let val = u64::from_le_bytes(v) | 1;
        // Safety: an 8-byte write to our eventfd.
        cvt(unsafe { libc::write(self.tx.as_raw_fd(), (&val as *const u64).cast(), 8) })?;
        Ok(())
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut val = 0u64;
        loop {
            // Safety: an 8-byte read from our eventfd.
            match cvt(unsafe { libc::read(self.rx.as_raw_fd(), (&mut val as *mut u64).cast(), 8) })
            {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let n = buf.len();
        buf.copy_from_slice(&val.to_le_bytes()[1..1 + n]);
        Ok(())
    }
}

/// A regular file and three one-byte fcntl locks passed round like a token: the side that has
/// just received handoff h holds locks h and h+1 (mod 3); it hands off h+1 by unlocking it and
/// waits for h+2 with F_SETLKW. Data goes by pwrite/pread at fixed offsets.
pub struct FileLock {
    file: std::fs::File,
    /// The next handoff this side makes.
    next: u64,
    out: usize,
}

fn lock(file: &std::fs::File, byte: u64, kind: i32) -> io::Result<()> {
    let fl = libc::flock {
        l_type: kind as i16,
        l_whence: libc::SEEK_SET as i16,
        l_start: byte as libc::off_t,
        l_len: 1,
        l_pid: 0,
    };
    loop {
        // Safety: fcntl on our open file with a filled struct flock.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLKW, &fl) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

impl Endpoint for FileLock {
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file
            .write_all_at(buf, (HDR + self.out * MAX_SIZE) as u64)?;
        lock(&self.file, self.next % 3, libc::F_UNLCK)
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        // The other side's handoff: next + 1 after ours (or the first, for the peer).
        lock(&self.file, (self.next + 1) % 3, libc::F_WRLCK)?;
        self.next += 2;
        self.file
            .read_exact_at(buf, (HDR + (1 - self.out) * MAX_SIZE) as u64)
    }
}

/// A plain file, no lock, no notification: data by pwrite, then a sequence number by pwrite;
/// the reader polls the other side's number with pread until it changes, then preads the data.
/// The page cache orders them: a reader that sees the new number sees the data written before.
pub struct FilePoll {
    file: std::fs::File,
    out: usize,
    sent: u32,
    seen: u32,
}

impl Endpoint for FilePoll {
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file
            .write_all_at(buf, (HDR + self.out * MAX_SIZE) as u64)?;
        self.sent = self.sent.wrapping_add(1);
        self.file
            .write_all_at(&self.sent.to_ne_bytes(), (8 * self.out) as u64)
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let mut n = [0u8; 4];
        loop {
            self.file
                .read_exact_at(&mut n, (8 * (1 - self.out)) as u64)?;
            if u32::from_ne_bytes(n) != self.seen {
                break;
            }
            std::hint::spin_loop();
        }
        self.seen = u32::from_ne_bytes(n);
        self.file
            .read_exact_at(buf, (HDR + (1 - self.out) * MAX_SIZE) as u64)
    }
}

/// What main made, what the peer is told (its `--spec`), and the fds it must inherit.
pub struct Setup {
    pub kind: Kind,
    pub spec: String,
    pub inherit: Vec<RawFd>,
    /// Kept open in main until the peer is ready (the peer's ends of pipes...), then closed.
    pub peer_ends: Vec<OwnedFd>,
    /// Objects removed when the run ends.
    pub dir: Option<tempfile::TempDir>,
    pub sysv: Option<i32>,
    pub mq_names: Vec<String>,
    state: State,
}

enum State {
    Ready(Box<dyn Endpoint>),
    /// Finished once the peer is running (it must open, connect or bind first).
    Fifo(PathBuf),
    Listen(OwnedFd),
    UnixDgram(OwnedFd, PathBuf),
    Udp(OwnedFd),
    Mq,
    Shm(Shm),
    Sig,
    Lock(std::fs::File),
    File(std::fs::File),
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(id) = self.sysv.take() {
            // Safety: removing our own queue.
            unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
        }
        for n in &self.mq_names {
            mq_unlink(n);
        }
    }
}

fn sys<T: Default + PartialOrd>(r: T, what: &str) -> Result<T> {
    if r < T::default() {
        Err(Error::sys(nix::errno::Errno::last(), what, ""))
    } else {
        Ok(r)
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::sys(e, "pipe2", ""))
}

fn unix_socket(ty: SockType) -> Result<OwnedFd> {
    socket::socket(AddressFamily::Unix, ty, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| Error::sys(e, "socket", ""))
}

fn unix_addr(path: &Path) -> Result<UnixAddr> {
    UnixAddr::new(path)
        .map_err(|_| Error::usage(format!("{}: too long for a socket path", path.display())))
}

fn bind_unix(fd: &OwnedFd, path: &Path) -> Result<()> {
    socket::bind(fd.as_raw_fd(), &unix_addr(path)?)
        .map_err(|e| Error::sys(e, "bind", path.display()))
}

fn connect_unix(fd: &OwnedFd, path: &Path) -> Result<()> {
    socket::connect(fd.as_raw_fd(), &unix_addr(path)?)
        .map_err(|e| Error::sys(e, "connect", path.display()))
}

fn inet_socket(ty: SockType) -> Result<OwnedFd> {
    socket::socket(AddressFamily::Inet, ty, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| Error::sys(e, "socket", ""))
}

fn lo(port: u16) -> SockaddrIn {
    SockaddrIn::from(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::LOCALHOST,
        port,
    ))
}

/// Binds to 127.0.0.1 on a port the kernel picks; that port.
fn bind_lo(fd: &OwnedFd) -> Result<u16> {
    socket::bind(fd.as_raw_fd(), &lo(0)).map_err(|e| Error::sys(e, "bind", "127.0.0.1:0"))?;
    let got: SockaddrIn =
        socket::getsockname(fd.as_raw_fd()).map_err(|e| Error::sys(e, "getsockname", ""))?;
    Ok(got.port())
}

fn connect_lo(fd: &OwnedFd, port: u16) -> Result<()> {
    socket::connect(fd.as_raw_fd(), &lo(port))
        .map_err(|e| Error::sys(e, "connect", format!("127.0.0.1:{port}")))
}

fn listen(fd: &OwnedFd) -> Result<()> {
    socket::listen(
        fd,
        socket::Backlog::new(1).map_err(|e| Error::sys(e, "listen", ""))?,
    )
    .map_err(|e| Error::sys(e, "listen", ""))
}

fn nodelay(fd: &OwnedFd) {
    let _ = socket::setsockopt(fd, sockopt::TcpNoDelay, &true);
}

/// 1 MiB each way (the kernel caps it at rmem_max/wmem_max).
fn bufsize(fd: &OwnedFd) {
    let _ = socket::setsockopt(fd, sockopt::RcvBuf, &(1 << 20));
    let _ = socket::setsockopt(fd, sockopt::SndBuf, &(1 << 20));
}

fn accept(fd: &OwnedFd) -> Result<OwnedFd> {
    let c = socket::accept4(fd.as_raw_fd(), SockFlag::SOCK_CLOEXEC)
        .map_err(|e| Error::sys(e, "accept", ""))?;
    // Safety: accept4 returned a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(c) })
}

fn mq_open(name: &str, size: usize, create: bool) -> Result<mqueue::MqdT> {
    let attr = mqueue::MqAttr::new(0, 8, size as mqueue::mq_attr_member_t, 0);
    let mut flags = mqueue::MQ_OFlag::O_RDWR | mqueue::MQ_OFlag::O_CLOEXEC;
    if create {
        flags |= mqueue::MQ_OFlag::O_CREAT | mqueue::MQ_OFlag::O_EXCL;
    }
    mqueue::mq_open(
        name,
        flags,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        create.then_some(&attr),
    )
    .map_err(|e| Error::sys(e, "mq_open", name))
}

/// Removes a queue we created.
fn mq_unlink(name: &str) {
    let _ = mqueue::mq_unlink(name);
}

/// Main's side, before the peer exists: creates the objects (0600, O_EXCL, in a private
/// directory or under a unique name).
pub fn setup(kind: Kind, size: usize) -> Result<Setup> {
    let mut s = Setup {
        kind,
        spec: String::new(),
        inherit: Vec::new(),
        peer_ends: Vec::new(),
        dir: None,
        sysv: None,
        mq_names: Vec::new(),
        state: State::Sig,
    };
    let private = || crate::fifo::private_dir();
    match kind {
        Kind::Pipe => {
            let (r1, w1) = pipe()?;
            let (r2, w2) = pipe()?;
            s.spec = format!("{},{}", r1.as_raw_fd(), w2.as_raw_fd());
            s.inherit = vec![r1.as_raw_fd(), w2.as_raw_fd()];
            s.state = State::Ready(Box::new(Stream::new(
                r2.as_raw_fd(),
                w1.as_raw_fd(),
                vec![r2, w1],
            )));
            s.peer_ends = vec![r1, w2];
        }
        Kind::Socketpair | Kind::Eventfd => {
            if kind == Kind::Socketpair {
                let (a, b) = socket::socketpair(
                    AddressFamily::Unix,
                    SockType::Stream,
                    None,
                    SockFlag::SOCK_CLOEXEC,
                )
                .map_err(|e| Error::sys(e, "socketpair", ""))?;
                s.spec = b.as_raw_fd().to_string();
                s.inherit = vec![b.as_raw_fd()];
                s.state =
                    State::Ready(Box::new(Stream::new(a.as_raw_fd(), a.as_raw_fd(), vec![a])));
                s.peer_ends = vec![b];
            } else {
                let ev = || -> Result<OwnedFd> {
                    // Safety: eventfd(2); owned at once.
                    let fd = sys(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) }, "eventfd")?;
                    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
                };
                let (to_peer, to_main) = (ev()?, ev()?);
                let (p1, p2) = (dup(&to_peer)?, dup(&to_main)?);
                s.spec = format!("{},{}", p1.as_raw_fd(), p2.as_raw_fd());
                s.inherit = vec![p1.as_raw_fd(), p2.as_raw_fd()];
                s.state = State::Ready(Box::new(Event {
                    tx: to_peer,
                    rx: to_main,
                }));
                s.peer_ends = vec![p1, p2];
            }
        }
        Kind::Fifo => {
            let d = private()?;
            for n in ["ping", "pong"] {
                crate::fifo::mkfifo(&d.path().join(n))?;
            }
            s.spec = d.path().display().to_string();
            s.state = State::Fifo(d.path().to_path_buf());
            s.dir = Some(d);
        }
        Kind::UnixStream => {
            let d = private()?;
            let l = unix_socket(SockType::Stream)?;
            bind_unix(&l, &d.path().join("s"))?;
            // Safety: listen on our bound socket.
            listen(&l)?;
            s.spec = d.path().join("s").display().to_string();
            s.state = State::Listen(l);
            s.dir = Some(d);
        }
        Kind::UnixDgram => {
            let d = private()?;
            let a = unix_socket(SockType::Datagram)?;
            bind_unix(&a, &d.path().join("a"))?;
            bufsize(&a);
            s.spec = d.path().display().to_string();
            s.state = State::UnixDgram(a, d.path().join("b"));
            s.dir = Some(d);
        }
        Kind::Tcp => {
            let l = inet_socket(SockType::Stream)?;
            let port = bind_lo(&l)?;
            // Safety: listen on our bound socket.
            listen(&l)?;
            s.spec = port.to_string();
            s.state = State::Listen(l);
        }
        Kind::Udp => {
            let u = inet_socket(SockType::Datagram)?;
            bufsize(&u);
            s.spec = bind_lo(&u)?.to_string();
            s.state = State::Udp(u);
        }
        Kind::PosixMq => {
            let base = crate::shm::unique_name("ipclab-zoo");
            let names = [format!("{base}-a"), format!("{base}-b")];
            for n in &names {
                // Closed at once (main reopens it below).
                let _ = mqueue::mq_close(mq_open(n, size, true)?);
                s.mq_names.push(n.clone());
            }
            s.spec = base;
            s.state = State::Mq;
        }
        Kind::SysvMq => {
            // Safety: a private queue, mode 0600.
            let id = sys(
                unsafe {
                    libc::msgget(libc::IPC_PRIVATE, libc::IPC_CREAT | libc::IPC_EXCL | 0o600)
                },
                "msgget",
            )?;
            s.sysv = Some(id);
            s.spec = id.to_string();
            s.state = State::Ready(Box::new(SysvMq {
                id,
                tx_type: 1,
                rx_type: 2,
                msg: vec![0; std::mem::size_of::<libc::c_long>() + size],
            }));
        }
        Kind::ShmFutex | Kind::ShmSem | Kind::ShmCondvar | Kind::ShmSpin => {
            let seg = crate::shm::Segment::create(&crate::shm::unique_name("ipclab-zoo"), SEG_LEN)?;
            s.spec = seg.name().to_string();
            let shm = Shm {
                seg,
                wake: wake_of(kind),
                out: 0,
                seen: 0,
                sent: 0,
            };
            shm.init()?;
            s.state = State::Shm(shm);
        }
        Kind::Signal => {
            block_rt_signal();
            s.spec = std::process::id().to_string();
            s.state = State::Sig;
        }
        Kind::FileLock => {
            let (d, path, file) = shared_file("token")?;
            // Main starts holding locks 0 and 1: handoff 1 is its first send.
            lock(&file, 0, libc::F_WRLCK).map_err(|e| Error::io(&e, "fcntl", path.display()))?;
            lock(&file, 1, libc::F_WRLCK).map_err(|e| Error::io(&e, "fcntl", path.display()))?;
            s.spec = path.display().to_string();
            s.state = State::Lock(file);
            s.dir = Some(d);
        }
        Kind::File => {
            let (d, path, file) = shared_file("data")?;
            s.spec = path.display().to_string();
            s.state = State::File(file);
            s.dir = Some(d);
        }
    }
    Ok(s)
}

/// A fresh file of SEG_LEN bytes in a private directory (file-lock, file): the directory, the
/// path the peer opens, main's open file.
fn shared_file(name: &str) -> Result<(tempfile::TempDir, PathBuf, std::fs::File)> {
    let d = crate::fifo::private_dir()?;
    let path = d.path().join(name);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::io(&e, "open", path.display()))?;
    file.set_len(SEG_LEN as u64)
        .map_err(|e| Error::io(&e, "ftruncate", path.display()))?;
    Ok((d, path, file))
}

fn dup(fd: &OwnedFd) -> Result<OwnedFd> {
    fd.try_clone().map_err(|e| Error::io(&e, "dup", ""))
}

fn wake_of(kind: Kind) -> Wake {
    match kind {
        Kind::ShmSem => Wake::Sem,
        Kind::ShmCondvar => Wake::Condvar,
        Kind::ShmSpin => Wake::Spin,
        _ => Wake::Futex,
    }
}

impl Setup {
    /// Main's endpoint, once the peer is running (`ready`: what it said when ready; `peer`:
    /// its pid). The names that need no more opening are unlinked here: nothing can leak.
    pub fn finish(&mut self, ready: &str, peer: i32) -> Result<Box<dyn Endpoint>> {
        self.peer_ends.clear();
        let state = std::mem::replace(&mut self.state, State::Sig);
        let e: Box<dyn Endpoint> = match state {
            State::Ready(e) => e,
            State::Fifo(dir) => {
                let w = crate::fifo::open_write(&dir.join("ping"))?;
                let r = crate::fifo::open_read(&dir.join("pong"))?;
                let (w, r): (OwnedFd, OwnedFd) = (w.into(), r.into());
                Box::new(Stream::new(r.as_raw_fd(), w.as_raw_fd(), vec![r, w]))
            }
            State::Listen(l) => {
                let c = accept(&l)?;
                if self.kind == Kind::Tcp {
                    nodelay(&c);
                }
                Box::new(Stream::new(c.as_raw_fd(), c.as_raw_fd(), vec![c]))
            }
            State::UnixDgram(a, b) => {
                connect_unix(&a, &b)?;
                Box::new(Dgram { fd: a })
            }
            State::Udp(u) => {
                let port: u16 = ready.trim().parse().map_err(|_| {
                    Error::runtime(format!("peer said {ready:?}, want its UDP port"))
                })?;
                connect_lo(&u, port)?;
                Box::new(Dgram { fd: u })
            }
            State::Mq => {
                let base = &self.spec;
                let tx = mq_open(&format!("{base}-a"), 0, false)?;
                let rx = mq_open(&format!("{base}-b"), 0, false)?;
                Box::new(PosixMq::new(tx, rx))
            }
            State::Shm(mut shm) => {
                // Mapped by both now: the name can go.
                let _ = shm.seg.unlink();
                Box::new(shm)
            }
            State::Sig => Box::new(Sig {
                to: peer,
                set: block_rt_signal(),
            }),
            State::Lock(file) => Box::new(FileLock {
                file,
                next: 1,
                out: 0,
            }),
            State::File(file) => Box::new(FilePoll {
                file,
                out: 0,
                sent: 0,
                seen: 0,
            }),
        };
        // Both sides have them open now.
        for n in std::mem::take(&mut self.mq_names) {
            mq_unlink(&n);
        }
        Ok(e)
    }
}

/// The peer's side, from main's `--spec`: returns its endpoint and what it tells main when
/// ready (a UDP port, or nothing).
pub fn peer(kind: Kind, spec: &str, size: usize) -> Result<(Box<dyn Endpoint>, String)> {
    let fds = |s: &str| -> Result<Vec<RawFd>> {
        s.split(',')
            .map(|x| {
                x.parse()
                    .map_err(|_| Error::usage(format!("bad --spec {s:?}")))
            })
            .collect()
    };
    let own = |fd: RawFd| unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(match kind {
        Kind::Pipe => {
            let f = fds(spec)?;
            (
                Box::new(Stream::new(f[0], f[1], vec![own(f[0]), own(f[1])])),
                String::new(),
            )
        }
        Kind::Socketpair => {
            let f = fds(spec)?;
            (
                Box::new(Stream::new(f[0], f[0], vec![own(f[0])])),
                String::new(),
            )
        }
        Kind::Eventfd => {
            let f = fds(spec)?;
            (
                Box::new(Event {
                    rx: own(f[0]),
                    tx: own(f[1]),
                }),
                String::new(),
            )
        }
        Kind::Fifo => {
            let d = Path::new(spec);
            let r: OwnedFd = crate::fifo::open_read(&d.join("ping"))?.into();
            let w: OwnedFd = crate::fifo::open_write(&d.join("pong"))?.into();
            (
                Box::new(Stream::new(r.as_raw_fd(), w.as_raw_fd(), vec![r, w])),
                String::new(),
            )
        }
        Kind::UnixStream => {
            let c = unix_socket(SockType::Stream)?;
            connect_unix(&c, Path::new(spec))?;
            (
                Box::new(Stream::new(c.as_raw_fd(), c.as_raw_fd(), vec![c])),
                String::new(),
            )
        }
        Kind::UnixDgram => {
            let d = Path::new(spec);
            let b = unix_socket(SockType::Datagram)?;
            bind_unix(&b, &d.join("b"))?;
            bufsize(&b);
            connect_unix(&b, &d.join("a"))?;
            (Box::new(Dgram { fd: b }), String::new())
        }
        Kind::Tcp => {
            let c = inet_socket(SockType::Stream)?;
            connect_lo(&c, spec.parse().map_err(|_| Error::usage("bad port"))?)?;
            nodelay(&c);
            (
                Box::new(Stream::new(c.as_raw_fd(), c.as_raw_fd(), vec![c])),
                String::new(),
            )
        }
        Kind::Udp => {
            let u = inet_socket(SockType::Datagram)?;
            bufsize(&u);
            let port = bind_lo(&u)?;
            connect_lo(&u, spec.parse().map_err(|_| Error::usage("bad port"))?)?;
            (Box::new(Dgram { fd: u }), port.to_string())
        }
        Kind::PosixMq => {
            let tx = mq_open(&format!("{spec}-b"), size, false)?;
            let rx = mq_open(&format!("{spec}-a"), size, false)?;
            (Box::new(PosixMq::new(tx, rx)), String::new())
        }
        Kind::SysvMq => (
            Box::new(SysvMq {
                id: spec.parse().map_err(|_| Error::usage("bad queue id"))?,
                tx_type: 2,
                rx_type: 1,
                msg: vec![0; std::mem::size_of::<libc::c_long>() + size],
            }),
            String::new(),
        ),
        Kind::ShmFutex | Kind::ShmSem | Kind::ShmCondvar | Kind::ShmSpin => {
            let seg = crate::shm::Segment::open(spec)?;
            (
                Box::new(Shm {
                    seg,
                    wake: wake_of(kind),
                    out: 1,
                    seen: 0,
                    sent: 0,
                }),
                String::new(),
            )
        }
        Kind::Signal => (
            Box::new(Sig {
                to: spec.parse().map_err(|_| Error::usage("bad pid"))?,
                set: block_rt_signal(),
            }),
            String::new(),
        ),
        Kind::File => {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(spec)
                .map_err(|e| Error::io(&e, "open", spec))?;
            (
                Box::new(FilePoll {
                    file,
                    out: 1,
                    sent: 0,
                    seen: 0,
                }),
                String::new(),
            )
        }
        Kind::FileLock => {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(spec)
                .map_err(|e| Error::io(&e, "open", spec))?;
            // The peer holds lock 2 before main's first handoff (lock 1).
            lock(&file, 2, libc::F_WRLCK).map_err(|e| Error::io(&e, "fcntl", spec))?;
            (
                Box::new(FileLock {
                    file,
                    next: 0,
                    out: 1,
                }),
                String::new(),
            )
        }
    })
}
