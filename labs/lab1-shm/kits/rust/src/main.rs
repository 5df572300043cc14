//! Lab 1 starter: K messages through a POSIX shared-memory segment, synchronised.
//!
//! The lab text: labs/lab1-shm/README.md (the grading contract is at its end).
//! Run it:   cargo run -- --messages 3 --name-prefix mine
//! Grade it: make grade
//! The messages go through the segment; two pipes carry "your turn" tokens.
//! Do the TODOs in order: each one not done stops the program and says which it is.
#![allow(unused_imports, unused_variables, unused_mut, unreachable_code)]

use nix::fcntl::OFlag;
use nix::sys::mman::{mmap, shm_open, shm_unlink, MapFlags, ProtFlags};
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ftruncate, pipe, read, write, ForkResult, Pid};
use std::num::NonZeroUsize;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;

const SIZE: usize = 8192;

fn todo(tag: &str, what: &str) -> ! {
    eprintln!("TODO({tag}) not done: {what} (see README.md)");
    std::process::exit(1)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.windows(2)
            .find(|w| w[0] == name)
            .map(|w| w[1].clone())
            .unwrap_or_else(|| {
                eprintln!("usage: lab1 --messages K --name-prefix P");
                std::process::exit(2)
            })
    };
    let k: u32 = arg("--messages").parse().unwrap_or(0);
    let name = format!("/{}-{}", arg("--name-prefix"), std::process::id());
    // TODO(lab1.1): shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600), ftruncate to SIZE, mmap SHARED (unsafe), as a *mut u8 | fr: shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600), ftruncate à SIZE, mmap SHARED (unsafe), en *mut u8
    let seg: *mut u8 = todo("lab1.1", "create and map the segment");
    // END TODO(lab1.1)
    // Safety (for the rest): seg maps SIZE bytes; the tokens make main and the secondary take turns.
    let (req_r, req_w) = pipe().expect("pipe");
    let (rep_r, rep_w) = pipe().expect("pipe");
    // TODO(lab1.2): fork (unsafe: one thread); the child, K times: read a token from req_r, upper-case the message in the segment (its length in the first 4 bytes), write a token on rep_w; then exit 0 | fr: fork ; l'enfant, K fois : lire un jeton sur req_r, mettre le message du segment en majuscules, écrire un jeton sur rep_w ; puis sortir avec 0
    let child: Pid = todo("lab1.2", "start the secondary");
    // END TODO(lab1.2)
    // TODO(lab1.3): for i = 1..K: write a message into the segment, send a token, wait for the answer, check it, print "message i" | fr: pour i = 1..K : écrire un message dans le segment, envoyer un jeton, attendre la réponse, la vérifier, afficher « message i »
    todo("lab1.3", "main's message loop");
    // END TODO(lab1.3)
    // TODO(lab1.4): waitpid the secondary, shm_unlink(name), exit 0 | fr: attendre le secondaire (waitpid), shm_unlink(name), sortir avec 0
    todo("lab1.4", "reap the secondary and unlink the segment");
    // END TODO(lab1.4)
}
