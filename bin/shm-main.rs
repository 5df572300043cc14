//! Lab 1 — main server: creates a POSIX shared-memory segment, starts the secondary server, and
//! exchanges K random messages with it through the segment, one at a time, synchronised by two
//! process-shared semaphores stored in the segment itself. With `--no-sync` it shows why
//! synchronisation is needed: the secondary catches messages half-written.
//!
//! Syscalls, in order: openat("/dev/shm/NAME", O_RDWR|O_CREAT|O_EXCL, 0600) (shm_open),
//! ftruncate, mmap(MAP_SHARED), clone (fork), execve (in the child), futex (sem_wait/sem_post,
//! only when a process must sleep or be woken), wait4, unlink("/dev/shm/NAME") (shm_unlink).
//!
//! Try: target/debug/shm-main --messages 3
//!
//! strace shows:
//!   openat(AT_FDCWD, "/dev/shm/ipclab-0-PID-XXXXXXXX", O_RDWR|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, 0600) = 3
//!   ftruncate(3, 20480) = 0
//!   mmap(NULL, 20480, PROT_READ|PROT_WRITE, MAP_SHARED, 3, 0) = ADDR
//!   futex(ADDR, FUTEX_WAIT_BITSET|FUTEX_CLOCK_REALTIME, 0, {...}, FUTEX_BITSET_MATCH_ANY) = 0
//!   wait4(PID, [{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = PID
//!   unlink("/dev/shm/ipclab-0-PID-XXXXXXXX") = 0

#[path = "lab1_layout.rs"]
mod layout;

use clap::Parser;
use ipclab::error::{Error, Result};
use ipclab::process::{self, tag, ExecGate};
use ipclab::shm::{self, Segment, SharedSem};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use rand::RngExt;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Lab 1 main server: K messages through POSIX shared memory")]
struct Args {
    /// Number of messages to exchange (or of reads to attempt with --no-sync).
    #[arg(long, value_name = "K", allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    messages: u64,
    /// Segment name prefix: the segment is /dev/shm/PREFIX-<uid>-<pid>-<random>.
    #[arg(long, value_name = "P", default_value = "ipclab")]
    name_prefix: String,
    /// No semaphores: main rewrites the data while the secondary copies it; torn reads are counted.
    #[arg(long)]
    no_sync: bool,
    /// Do not print one line per message.
    #[arg(long)]
    quiet: bool,
}

fn main() {
    ipclab::args::main(run)
}

fn run(args: &Args) -> Result<i32> {
    shm::check_prefix(&args.name_prefix)?;
    let me = tag("main");
    let name = shm::unique_name(&args.name_prefix);
    let mut seg = Segment::create(&name, layout::SEGMENT_LEN)?;
    let h = layout::header(&seg);
    // Safety: fresh segment, nobody else maps it yet; the fields are in bounds and aligned.
    let (request, reply) = unsafe {
        (
            SharedSem::init(std::ptr::addr_of_mut!((*h).request), 0)?,
            SharedSem::init(std::ptr::addr_of_mut!((*h).reply), 0)?,
        )
    };
    ipclab::say!(
        "{me} created /dev/shm{name} ({} bytes)",
        layout::SEGMENT_LEN
    );

    let path = process::sibling_binary("shm-secondary")?;
    let path_str = path.display().to_string();
    let mut argv = vec![
        path_str.clone(),
        "--name".into(),
        name.clone(),
        "--messages".into(),
        args.messages.to_string(),
    ];
    if args.no_sync {
        argv.push("--no-sync".into());
    }
    let argv = process::argv(&argv)?;
    let gate = ExecGate::new()?;
    std::io::stdout().flush().ok();
    // Safety: single-threaded; the child only runs execv (or reports and _exits).
    let child = match unsafe { fork() } {
        Err(e) => return Err(Error::sys(e, "fork", "")),
        Ok(ForkResult::Child) => gate.exec(&argv[0], &argv),
        Ok(ForkResult::Parent { child }) => child,
    };
    gate.wait_exec(child, &path_str)?;
    ipclab::say!("{me} started secondary {child} (fork + execve)");

    let outcome = if args.no_sync {
        race(&seg, child)
    } else {
        exchange(args, &seg, &request, &reply, child)
    };
    if let Err(e) = outcome {
        ipclab::say!("{e}");
        let _ = process::signal(child, nix::sys::signal::Signal::SIGTERM);
        if let Ok(st) = process::wait_for(child) {
            ipclab::say!("{me} secondary {child} {}; reaped", process::describe(&st));
        }
        seg.unlink()?;
        return Ok(1);
    }
    let st = process::wait_for(child)?;
    ipclab::say!("{me} secondary {child} {}; reaped", process::describe(&st));
    seg.unlink()?;
    ipclab::say!("{me} unlinked /dev/shm{name}; exiting");
    Ok(if st == WaitStatus::Exited(child, 0) {
        0
    } else {
        1
    })
}

/// K messages, one at a time: write, post `request`, wait `reply`, check the uppercase answer.
fn exchange(
    args: &Args,
    seg: &Segment,
    request: &SharedSem,
    reply: &SharedSem,
    child: Pid,
) -> Result<()> {
    let (len_word, quit, _) = layout::atomics(seg);
    let data = layout::data(seg);
    let mut rng = rand::rng();
    let mut stdout = std::io::stdout().lock();
    let mut msg = vec![0u8; layout::DATA_LEN];
    for i in 1..=args.messages {
        let len = rng.random_range(1..=layout::DATA_LEN);
        msg[..len]
            .iter_mut()
            .for_each(|b| *b = rng.random_range(b'a'..=b'z'));
        // Safety: the secondary touches `data` only between our post(request) and its
        // post(reply); the semaphores order these copies (they are full barriers).
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), data, len) };
        len_word.store(len, Ordering::Relaxed);
        request.post()?;
        wait_peer(reply, child)?;
        // Safety: as above; the secondary posted `reply` after its last write.
        let answer = unsafe { std::slice::from_raw_parts(data, len) };
        if !answer
            .iter()
            .zip(&msg[..len])
            .all(|(a, m)| *a == m.to_ascii_uppercase())
        {
            return Err(Error::runtime(format!(
                "reply to message {i} is not its uppercase copy"
            )));
        }
        if !args.quiet {
            writeln!(stdout, "message {i}: {len} bytes, reply verified")
                .map_err(|e| Error::io(&e, "write", "stdout"))?;
        }
    }
    quit.store(1, Ordering::Relaxed);
    request.post()
}

/// Waits for the secondary's post; if it died instead, says so rather than waiting forever.
fn wait_peer(sem: &SharedSem, child: Pid) -> Result<()> {
    while !sem.wait_timeout(Duration::from_millis(200))? {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        if !matches!(waitid(Id::Pid(child), flags), Ok(WaitStatus::StillAlive)) {
            return Err(Error::runtime(format!(
                "secondary {child} died without answering"
            )));
        }
    }
    Ok(())
}

/// --no-sync: rewrite the whole data area with generation g, g+1, ... until the secondary is done.
fn race(seg: &Segment, child: Pid) -> Result<()> {
    let words = layout::words(seg);
    let (_, _, done) = layout::atomics(seg);
    let mut g: u64 = 0;
    while done.load(Ordering::Acquire) == 0 {
        g += 1;
        for w in words {
            w.store(g, Ordering::Relaxed);
        }
        if g.is_multiple_of(256) && !ipclab::inspect::is_alive(child) {
            return Err(Error::runtime(format!(
                "secondary {child} died before it was done"
            )));
        }
    }
    ipclab::say!("{} wrote {g} generations", tag("main"));
    Ok(())
}
