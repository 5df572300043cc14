//! Lab 2 starter: two named pipes, N ping-pong exchanges, a clean shutdown.
//!
//! The lab text: labs/lab2-pingpong/README.md (the grading contract is at its end).
//! Run it:   cargo run -- --exchanges 3 --dir "$(mktemp -d)"
//! Grade it: make grade
//! Do the TODOs in order: each one not done stops the program and says which it is.
#![allow(unused_imports, unused_variables, unused_mut, unreachable_code)]

use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, mkfifo, ForkResult};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

fn todo(tag: &str, what: &str) -> ! {
    eprintln!("TODO({tag}) not done: {what} (see README.md)");
    std::process::exit(1)
}

/// The child: answers each ping, then returns its exit status.
fn secondary(n: u32, ping: &Path, pong: &Path) -> i32 {
    // TODO(lab2.3): open ping for reading (BufReader), then pong for writing | fr: ouvrir ping en lecture (BufReader), puis pong en écriture
    let (mut rd, mut wr): (BufReader<File>, File) = todo("lab2.3", "the secondary opens the two FIFOs");
    // END TODO(lab2.3)
    for i in 1..=n {
        // TODO(lab2.4): read the line "ping i\n", print "pong i", write "pong i\n" to pong | fr: lire « ping i », afficher « pong i », écrire « pong i » dans pong
        todo("lab2.4", "the secondary answers ping i");
        // END TODO(lab2.4)
    }
    0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.windows(2)
            .find(|w| w[0] == name)
            .map(|w| w[1].clone())
            .unwrap_or_else(|| {
                eprintln!("usage: lab2 --exchanges N --dir DIR");
                std::process::exit(2)
            })
    };
    let n: u32 = arg("--exchanges").parse().unwrap_or(0);
    let dir = PathBuf::from(arg("--dir"));
    let (ping, pong) = (dir.join("ping"), dir.join("pong"));
    // TODO(lab2.1): create the two FIFOs, mode 0600 (nix::unistd::mkfifo) | fr: créer les deux FIFO, mode 0600 (nix::unistd::mkfifo)
    todo("lab2.1", "create the two FIFOs in DIR");
    // END TODO(lab2.1)
    // TODO(lab2.2): fork (unsafe: this program has one thread); in the child, std::process::exit(secondary(n, &ping, &pong)) | fr: fork ; dans l'enfant, std::process::exit(secondary(...))
    let child: nix::unistd::Pid = todo("lab2.2", "start the secondary with fork");
    // END TODO(lab2.2)
    // TODO(lab2.5): open ping for writing, pong for reading; for i = 1..N print "ping i", send "ping i\n", read "pong i\n" | fr: ouvrir ping en écriture, pong en lecture ; pour i = 1..N afficher « ping i », l'envoyer, lire la réponse
    todo("lab2.5", "main's exchange loop");
    // END TODO(lab2.5)
    // TODO(lab2.6): waitpid the secondary, remove both FIFOs (std::fs::remove_file), exit 0 | fr: attendre le secondaire (waitpid), supprimer les deux FIFO, sortir avec 0
    todo("lab2.6", "reap the secondary and remove the FIFOs");
    // END TODO(lab2.6)
}
