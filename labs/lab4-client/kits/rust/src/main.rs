//! Lab 4 starter: the dispatcher and the worker of the 7-step handoff, in one program.
//!
//! The lab text: labs/lab4-client/README.md (the grading contract is at its end): the reference
//! watchdog starts this program as `lab4 dispatcher --workers K --dir DIR` and as
//! `lab4 worker --id I --dir DIR --work-ms W`, and restarts whichever dies.
//! Grade it: make grade
//! Do the TODOs in order: each one not done stops the program and says which it is.
#![allow(unused_imports, unused_variables, unused_mut, unreachable_code, dead_code)]

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const MAX: usize = 64 * 1024;
static STOP: AtomicBool = AtomicBool::new(false);

fn todo(tag: &str, what: &str) -> ! {
    eprintln!("TODO({tag}) not done: {what} (see README.md)");
    std::process::exit(1)
}

/// A listening socket at `path`.
fn listen(path: &Path) -> UnixListener {
    // TODO(lab4.1): UnixListener::bind; if it fails because a dead server left its socket file (connecting is refused), remove the file and bind again; if a server listens, exit 2 | fr: UnixListener::bind ; si un serveur mort a laissé son fichier (connexion refusée), le supprimer et recommencer ; si un serveur écoute, sortir avec 2
    todo("lab4.1", "listen on a Unix socket (rebinding over a dead server's socket)");
    // END TODO(lab4.1)
}

extern "C" fn on_term(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// SIGTERM sets STOP; the loops check it and return, so the sockets are removed by `main`.
fn catch_term() {
    // TODO(lab4.2): install on_term for SIGTERM WITHOUT SA_RESTART (libc::sigaction), so a blocked accept or poll returns EINTR | fr: installer on_term pour SIGTERM SANS SA_RESTART (libc::sigaction), pour qu'un accept ou poll bloqué rende EINTR
    todo("lab4.2", "catch SIGTERM");
    // END TODO(lab4.2)
}

#[derive(Debug)]
enum Bad {
    Io(io::Error),
    Malformed(&'static str),
}

/// One frame: a 4-byte big-endian length, then that many bytes of UTF-8; None at end of stream.
fn read_frame(s: &mut UnixStream) -> Result<Option<String>, Bad> {
    // TODO(lab4.3): read the 4 length bytes (end of stream before them: Ok(None)), refuse more than MAX, read the body, decode UTF-8; errors: Bad::Malformed | fr: lire les 4 octets de longueur (fin de flot avant : Ok(None)), refuser plus de MAX, lire le corps, décoder l'UTF-8 ; erreurs : Bad::Malformed
    todo("lab4.3", "read a frame");
    // END TODO(lab4.3)
}

fn send_frame(s: &mut UnixStream, text: &str) {
    let mut b = (text.len() as u32).to_be_bytes().to_vec();
    b.extend_from_slice(text.as_bytes());
    let _ = s.write_all(&b); // the peer may be gone: its problem
}

/// Steps 2-3: the first worker that answers YES to FREE?, or None.
fn ask_free(dir: &Path, k: u32) -> Option<u32> {
    // TODO(lab4.4): for w in 1..=k: connect to DIR/worker-w.ctl (read timeout 300 ms), send FREE?, a YES returns Some(w); errors and NO go on to the next | fr: pour w de 1 à k : se connecter à DIR/worker-w.ctl (délai de lecture 300 ms), envoyer FREE?, un YES renvoie Some(w) ; erreurs et NO passent au suivant
    todo("lab4.4", "ask the workers FREE?");
    // END TODO(lab4.4)
}

fn dispatcher(dir: &Path, k: u32) {
    let srv = listen(&dir.join("dispatcher.sock"));
    catch_term();
    while !STOP.load(Ordering::SeqCst) {
        // std's accept retries after EINTR: poll first, so SIGTERM is seen within 0.5 s.
        if !readable(&[srv.as_raw_fd()], 500)[0] {
            continue;
        }
        let Ok((mut client, _)) = srv.accept() else { continue };
        let _ = client.set_read_timeout(Some(Duration::from_secs(1)));
        // TODO(lab4.5): read the client's frame: malformed gets "ERR ...", HELLO gets "WORKER DIR/worker-w.sock" (from ask_free) or "BUSY" at once, anything else "ERR ..." | fr: lire la trame du client : invalide reçoit « ERR ... », HELLO reçoit « WORKER ... » (d'après ask_free) ou « BUSY » aussitôt, le reste « ERR ... »
        todo("lab4.5", "the dispatcher's handoff");
        // END TODO(lab4.5)
    }
}

enum State {
    Free,
    Reserved(Instant),
    Busy(UnixStream, String, Instant),
}

/// True if `fd` became readable within `ms` (EINTR counts as not).
fn readable(fds: &[i32], ms: i32) -> Vec<bool> {
    let mut p: Vec<libc::pollfd> = fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    // Safety: p is a live array of pollfd.
    let n = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
    p.iter().map(|x| n > 0 && x.revents & libc::POLLIN != 0).collect()
}

fn worker(dir: &Path, id: u32, work: Duration) {
    let ctl = listen(&dir.join(format!("worker-{id}.ctl")));
    let svc = listen(&dir.join(format!("worker-{id}.sock")));
    catch_term();
    let mut state = State::Free;
    let mut waiting: Vec<UnixStream> = Vec::new();
    while !STOP.load(Ordering::SeqCst) {
        let now = Instant::now();
        let due = matches!(&state, State::Busy(_, _, until) if now >= *until);
        if due {
            if let State::Busy(mut c, answer, _) = std::mem::replace(&mut state, State::Free) {
                send_frame(&mut c, &answer);
            }
        }
        if matches!(&state, State::Reserved(at) if at.elapsed() > Duration::from_secs(2)) {
            state = State::Free;
        }
        if matches!(state, State::Free) {
            for mut c in waiting.drain(..) {
                send_frame(&mut c, "YES");
            }
        }
        let wait = match &state {
            State::Busy(_, _, until) => until.saturating_duration_since(now).as_millis() as i32,
            _ => 500,
        };
        let r = readable(&[ctl.as_raw_fd(), svc.as_raw_fd()], wait);
        if r[0] {
            let Ok((mut c, _)) = ctl.accept() else { continue };
            let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
            // TODO(lab4.6): control: FREE? answers YES and reserves (State::Reserved(now)) only when Free, else NO; DONE? is answered YES once free (push it on waiting meanwhile); malformed or unknown: "ERR ..." | fr: contrôle : FREE? répond YES et réserve seulement si Free, sinon NO ; DONE? reçoit YES une fois libre (le mettre dans waiting) ; invalide ou inconnu : « ERR ... »
            todo("lab4.6", "the worker's control socket");
            // END TODO(lab4.6)
        }
        if r[1] {
            let Ok((mut c, _)) = svc.accept() else { continue };
            let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
            // TODO(lab4.7): service: only when Reserved (else "ERR not reserved"); read "REQ text" (else "ERR ...", Free again); then State::Busy(c, "RESP " + TEXT, now + work): the answer goes out when due, above | fr: service : seulement si Reserved ; lire « REQ texte » (sinon « ERR ... », de nouveau Free) ; puis State::Busy(c, « RESP TEXTE », now + work)
            todo("lab4.7", "the worker's requests");
            // END TODO(lab4.7)
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: &str| {
        args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone()).unwrap_or(default.to_string())
    };
    let dir = PathBuf::from(arg("--dir", ""));
    let mut paths = Vec::new();
    match args.get(1).map(|s| s.as_str()) {
        Some("dispatcher") => {
            paths.push(dir.join("dispatcher.sock"));
            dispatcher(&dir, arg("--workers", "1").parse().unwrap_or(1));
        }
        Some("worker") => {
            let id: u32 = arg("--id", "1").parse().unwrap_or(1);
            paths.push(dir.join(format!("worker-{id}.ctl")));
            paths.push(dir.join(format!("worker-{id}.sock")));
            worker(&dir, id, Duration::from_millis(arg("--work-ms", "0").parse().unwrap_or(0)));
        }
        _ => {
            eprintln!("usage: lab4 dispatcher --workers K --dir DIR | lab4 worker --id I --dir DIR --work-ms W");
            std::process::exit(2)
        }
    }
    // Stopped by SIGTERM: the socket paths go with us.
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}
