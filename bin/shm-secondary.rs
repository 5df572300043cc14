//! Lab 1 — secondary server: maps the segment main created and answers each message in place
//! with its uppercase copy; with `--no-sync`, copies the data area while main rewrites it and
//! counts the copies that mix two generations (torn reads).
//!
//! Syscalls, in order: execve (started by main), openat("/dev/shm/NAME", O_RDWR) (shm_open,
//! no O_CREAT: main owns the name), newfstatat (fstat, for the size), mmap(MAP_SHARED), futex (sem_wait/sem_post), exit_group.
//!
//! Try: started by `shm-main`; run `strace -f target/debug/shm-main --messages 2`.
//!
//! strace shows:
//!   openat(AT_FDCWD, "/dev/shm/ipclab-0-PID-XXXXXXXX", O_RDWR|O_NOFOLLOW|O_CLOEXEC) = 3
//!   newfstatat(3, "", {st_mode=S_IFREG|0600, st_size=20480, ...}, AT_EMPTY_PATH) = 0
//!   mmap(NULL, 20480, PROT_READ|PROT_WRITE, MAP_SHARED, 3, 0) = ADDR
//!   futex(ADDR, FUTEX_WAKE, 1) = 1
//!   exit_group(0) = ?

#[path = "lab1_layout.rs"]
mod layout;

use clap::Parser;
use ipclab::error::{Error, Result};
use ipclab::process::tag;
use ipclab::shm::{Segment, SharedSem};
use nix::unistd::{getppid, Pid};
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Lab 1 secondary server (started by shm-main)")]
struct Args {
    /// Segment name, as main created it (starts with /).
    #[arg(long)]
    name: String,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    messages: u64,
    #[arg(long)]
    no_sync: bool,
}

fn main() {
    ipclab::args::main(run)
}

fn run(args: &Args) -> Result<i32> {
    let me = tag("secondary");
    let parent = getppid();
    let mut seg = Segment::open(&args.name)?;
    if seg.len() != layout::SEGMENT_LEN {
        return Err(Error::runtime(format!(
            "{} is {} bytes, not {}",
            args.name,
            seg.len(),
            layout::SEGMENT_LEN
        )));
    }
    ipclab::say!("{me} mapped /dev/shm{}", args.name);
    if args.no_sync {
        return Ok(race(args, &seg));
    }
    let h = layout::header(&seg);
    // Safety: main initialised both semaphores before starting us; the mapping outlives them.
    let (request, reply) = unsafe {
        (
            SharedSem::at(std::ptr::addr_of_mut!((*h).request)),
            SharedSem::at(std::ptr::addr_of_mut!((*h).reply)),
        )
    };
    let (len_word, quit, _) = layout::atomics(&seg);
    let data = layout::data(&seg);
    let mut answered = 0u64;
    loop {
        while !request.wait_timeout(Duration::from_millis(200))? {
            if getppid() != parent {
                return Ok(orphaned(&me, parent, &mut seg, answered));
            }
        }
        if quit.load(Ordering::Relaxed) != 0 {
            break;
        }
        let len = len_word.load(Ordering::Relaxed).min(layout::DATA_LEN);
        // Safety: main wrote the message before posting `request` and waits for `reply` before
        // touching `data` again: we are alone in it until our post.
        let msg = unsafe { std::slice::from_raw_parts_mut(data, len) };
        msg.make_ascii_uppercase();
        reply.post()?;
        answered += 1;
    }
    ipclab::say!("{me} answered {answered} messages; exiting first");
    Ok(0)
}

/// Main died: remove the segment it can no longer unlink (only if the name is still ours).
fn orphaned(me: &str, parent: Pid, seg: &mut Segment, answered: u64) -> i32 {
    ipclab::say!("{me} main ({parent}) died after {answered} messages");
    match seg.unlink_if_same() {
        Ok(true) => ipclab::say!("{me} unlinked /dev/shm{} left by main", seg.name()),
        Ok(false) => {}
        Err(e) => ipclab::say!("{e}"),
    }
    1
}

/// K copies of the data area taken while main rewrites it; a copy is torn when its words do not
/// all hold the same generation.
fn race(args: &Args, seg: &Segment) -> i32 {
    let words = layout::words(seg);
    let (_, _, done) = layout::atomics(seg);
    let mut copy = vec![0u64; words.len()];
    let mut torn = 0u64;
    for _ in 0..args.messages {
        for (c, w) in copy.iter_mut().zip(words) {
            *c = w.load(Ordering::Relaxed);
        }
        if copy.iter().any(|&g| g != copy[0]) {
            torn += 1;
        }
    }
    done.store(1, Ordering::Release);
    println!("torn reads: {torn} of {}", args.messages);
    0
}
