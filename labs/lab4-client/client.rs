//! The grader's clients of lab 4: each speaks the frame protocol of labs/lab4-client/README.md
//! from its own thread, as a client would, and some send what no client should (malformed frames).

use crate::frame;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What one client got.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Handed to the worker at `worker` (pid of the process listening there), answered right.
    Served {
        worker: String,
        pid: i32,
    },
    Busy,
    /// The dispatcher's socket could not be reached (not bound yet, or gone).
    Unreachable(String),
    /// A wrong answer, a closed connection, an error reply: the text says which.
    Failed(String),
    /// No answer within the client's patience.
    Hung(String),
}

/// How a student reads it: "served by the worker at DIR/w1.sock (pid 42)", "told BUSY", ...
impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Answer::Served { worker, pid } => f.write_str(&tf!(
                "served by the worker at {worker} (pid {pid})",
                "servi par l'ouvrier à {worker} (pid {pid})"
            )),
            Answer::Busy => f.write_str(&tf!("told BUSY", "BUSY reçu")),
            Answer::Unreachable(why) => f.write_str(&tf!(
                "no dispatcher to reach ({why})",
                "aucun répartiteur à joindre ({why})"
            )),
            Answer::Failed(why) => f.write_str(&tf!("a failure: {why}", "échec : {why}")),
            Answer::Hung(why) => f.write_str(&tf!("no answer: {why}", "pas de réponse : {why}")),
        }
    }
}

impl Answer {
    pub(super) fn ok(&self) -> bool {
        matches!(self, Answer::Served { .. } | Answer::Busy)
    }
}

/// One finished client: its answer and when it came.
#[derive(Debug, Clone)]
pub struct Done {
    pub answer: Answer,
    pub at: Instant,
    /// Served, but the worker did not close the connection after RESP: what the client saw.
    pub unclosed: Option<String>,
}

/// A client connects, gets a socket whose connect and reads give up after `patience`.
pub(super) fn connect(path: &Path, patience: Duration) -> std::io::Result<UnixStream> {
    use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, UnixAddr};
    use nix::sys::time::TimeVal;
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // A full listen backlog makes connect block: SO_SNDTIMEO bounds it (and writes).
    let tv = TimeVal::new(patience.as_secs() as i64, patience.subsec_micros() as i64);
    socket::setsockopt(&fd, sockopt::SendTimeout, &tv)?;
    socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &UnixAddr::new(path)?)?;
    let s = UnixStream::from(fd);
    s.set_read_timeout(Some(patience))?;
    Ok(s)
}

/// `connect`, again every 20 ms while nobody listens there (a server being restarted).
pub(super) fn connect_again(path: &Path, patience: Duration) -> std::io::Result<UnixStream> {
    let start = Instant::now();
    loop {
        match connect(path, patience) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
                ) && start.elapsed() < patience =>
            {
                std::thread::sleep(Duration::from_millis(20))
            }
            other => return other,
        }
    }
}

/// Reads one frame; the error is said as the student should read it.
pub(super) fn read_answer(
    s: &mut UnixStream,
    who: &str,
    patience: Duration,
) -> Result<String, Answer> {
    match frame::read(s) {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err(Answer::Failed(tf!(
            "{who} closed the connection without answering",
            "{who} a fermé la connexion sans répondre"
        ))),
        Err(frame::FrameError::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Err(Answer::Hung(tf!(
                "no answer from {who} in {:.1} s",
                "pas de réponse de {who} en {:.1} s",
                patience.as_secs_f64()
            )))
        }
        Err(e) => Err(Answer::Failed(tf!("{who}: {e}", "{who} : {e}"))),
    }
}

/// One whole client: HELLO, then REQ to the worker it is sent to. `sent` is told the worker's
/// pid (SO_PEERCRED: the process that listens there) once the request is on its way.
pub(super) fn client(
    dir: &Path,
    text: &str,
    patience: Duration,
    close_within: Duration,
    sent: Option<mpsc::Sender<i32>>,
) -> Done {
    let mut at = None;
    let mut unclosed = None;
    // Paths in DIR are shown as DIR/...: the box's own path means nothing to the student.
    let shown = |addr: &str| {
        addr.strip_prefix(&dir.display().to_string())
            .map_or(addr.to_string(), |r| format!("DIR{r}"))
    };
    let answer = (|| {
        let path = dir.join("dispatcher.sock");
        let mut d = connect(&path, patience)
            .map_err(|e| Answer::Unreachable(tf!("connect DIR/dispatcher.sock: {e}", "connect DIR/dispatcher.sock : {e}")))?;
        frame::write(&mut d, "HELLO")
            .map_err(|e| Answer::Failed(tf!("sending HELLO to the dispatcher: {e}", "envoi de HELLO au répartiteur : {e}")))?;
        let m = read_answer(&mut d, &tf!("the dispatcher", "le répartiteur"), patience)?;
        drop(d);
        if m == "BUSY" {
            return Err(Answer::Busy);
        }
        let Some(addr) = m.strip_prefix("WORKER ") else {
            return Err(Answer::Failed(tf!("the dispatcher answered HELLO with {:?} (want WORKER <path> or BUSY)", "le répartiteur a répondu {:?} à HELLO (WORKER <chemin> ou BUSY attendu)",
                cut(&m)
            )));
        };
        let path = Path::new(addr);
        let addr = shown(addr);
        let addr = addr.as_str();
        let mut w = connect(path, patience)
            .map_err(|e| Answer::Failed(tf!("connect to the worker at {addr}: {e}", "connect à l'ouvrier à {addr} : {e}")))?;
        let pid = nix::sys::socket::getsockopt(&w, nix::sys::socket::sockopt::PeerCredentials)
            .map(|c| c.pid())
            .unwrap_or(0);
        frame::write(&mut w, &format!("REQ {text}"))
            .map_err(|e| Answer::Failed(tf!("sending REQ to the worker at {addr}: {e}", "envoi de REQ à l'ouvrier à {addr} : {e}")))?;
        if let Some(tx) = sent {
            let _ = tx.send(pid);
        }
        let r = read_answer(&mut w, &tf!("the worker at {addr}", "l'ouvrier à {addr}"), patience)?;
        let want = format!("RESP {}", text.to_uppercase());
        if r != want {
            return Err(Answer::Failed(tf!("the worker at {addr} answered {:?} (want {want:?})", "l'ouvrier à {addr} a répondu {:?} ({want:?} attendu)",
                cut(&r)
            )));
        }
        // Answered now; then the worker must end the connection (step 6): end of file.
        at = Some(Instant::now());
        let _ = w.set_read_timeout(Some(close_within));
        let mut more = [0u8; 1];
        unclosed = match std::io::Read::read(&mut w, &mut more) {
            Ok(0) => None,
            Ok(_) => Some(tf!("the worker at {addr} sent more after its RESP: one answer, then close the connection", "l'ouvrier à {addr} a envoyé autre chose après son RESP : une réponse, puis fermez la connexion"
            )),
            Err(_) => Some(tf!("the worker at {addr} answered but did not close the connection within {} ms: close it after RESP (step 6), or its client never sees the end", "l'ouvrier à {addr} a répondu mais n'a pas fermé la connexion en {} ms : fermez-la après RESP (étape 6), sinon son client n'en voit jamais la fin",
                close_within.as_millis()
            )),
        };
        Ok(Answer::Served {
            worker: addr.to_string(),
            pid,
        })
    })()
    .unwrap_or_else(|a| a);
    Done {
        answer,
        at: at.unwrap_or_else(Instant::now),
        unclosed,
    }
}

pub(super) fn cut(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Each malformed case: what was sent, and whether the reply was right (else why not).
pub type Cases = Vec<(String, Result<(), String>)>;

/// The malformed frames, each on its own connection, and what came back.
pub(super) fn malformed(dir: &Path, patience: Duration) -> Cases {
    let disp = dir.join("dispatcher.sock");
    let mut results = Vec::new();
    // (what, bytes, whether an ERR reply is owed: a cut frame can only be closed)
    let cases: [(String, Vec<u8>, bool); 4] = [
        (
            tf!("a length of 2 GiB", "une longueur de 2 Gio"),
            [&0x7fff_ffffu32.to_be_bytes()[..], b"HELLO"].concat(),
            true,
        ),
        (
            tf!(
                "a frame that is not UTF-8",
                "une trame qui n'est pas de l'UTF-8"
            ),
            vec![0, 0, 0, 4, 0xff, 0xfe, 0xfd, 0xfc],
            true,
        ),
        (
            tf!("an unknown message GIMME", "un message inconnu GIMME"),
            [&5u32.to_be_bytes()[..], b"GIMME"].concat(),
            true,
        ),
        (
            tf!(
                "a frame cut short (length 10, 2 bytes, then end of stream)",
                "une trame tronquée (longueur 10, 2 octets, puis fin du flux)"
            ),
            vec![0, 0, 0, 10, b'H', b'E'],
            false,
        ),
    ];
    for (what, bytes, owed) in cases {
        let started = Instant::now();
        let r = (|| {
            let mut s =
                connect_again(&disp, patience).map_err(|e| tf!("connect: {e}", "connect : {e}"))?;
            s.write_all(&bytes)
                .map_err(|e| tf!("write: {e}", "write : {e}"))?;
            let _ = s.shutdown(std::net::Shutdown::Write);
            expect_err(
                &mut s,
                &tf!("the dispatcher", "le répartiteur"),
                owed,
                patience,
            )
        })();
        results.push((
            tf!("dispatcher sent {what}", "répartiteur, envoi de {what}"),
            r,
        ));
        if started.elapsed() >= patience {
            // A dispatcher that did not answer in all that time will not answer the next ones.
            results.push((
                tf!("the other cases", "les autres cas"),
                Err(tf!(
                    "not tried: the dispatcher is not answering",
                    "non essayé : le répartiteur ne répond pas"
                )),
            ));
            return results;
        }
    }
    // A worker reserved for us, sent a frame that is not a request.
    let r = (|| {
        let mut d =
            connect_again(&disp, patience).map_err(|e| tf!("connect: {e}", "connect : {e}"))?;
        frame::write(&mut d, "HELLO").map_err(|e| tf!("HELLO: {e}", "HELLO : {e}"))?;
        let m = read_answer(&mut d, &tf!("the dispatcher", "le répartiteur"), patience)
            .map_err(|a| a.to_string())?;
        let Some(addr) = m.strip_prefix("WORKER ") else {
            return Err(tf!(
                "could not get a worker to test (dispatcher said {:?})",
                "impossible d'obtenir un ouvrier à tester (le répartiteur a dit {:?})",
                cut(&m)
            ));
        };
        let mut w =
            connect(Path::new(addr), patience).map_err(|e| tf!("connect: {e}", "connect : {e}"))?;
        w.write_all(&[0, 0, 0, 3, 0xc3, 0x28, 0xa0])
            .map_err(|e| tf!("write: {e}", "write : {e}"))?;
        expect_err(&mut w, &tf!("the worker", "l'ouvrier"), true, patience)
    })();
    results.push((
        tf!(
            "worker sent a frame that is not UTF-8",
            "ouvrier, envoi d'une trame qui n'est pas de l'UTF-8"
        ),
        r,
    ));
    results
}

/// After a bad frame: an `ERR ...` frame (when owed), or the connection closed; never silence.
pub(super) fn expect_err(
    s: &mut UnixStream,
    who: &str,
    owed: bool,
    patience: Duration,
) -> Result<(), String> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match s.read(&mut len[got..]) {
            Ok(0) if got == 0 && !owed => return Ok(()),
            Ok(0) if got == 0 => {
                return Err(tf!(
                    "{who} closed without an ERR reply",
                    "{who} a fermé sans répondre ERR"
                ))
            }
            Ok(0) => {
                return Err(tf!(
                    "{who} closed inside its reply",
                    "{who} a fermé au milieu de sa réponse"
                ))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(tf!(
                    "{who} neither answered nor closed in {:.1} s",
                    "{who} n'a ni répondu ni fermé en {:.1} s",
                    patience.as_secs_f64()
                ))
            }
            // The server closed with our bytes unread: a reset, which is a close.
            Err(e) if !owed && e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(tf!("{who}: {e}", "{who} : {e}")),
        }
    }
    let n = (u32::from_be_bytes(len) as usize).min(frame::MAX_FRAME);
    let mut body = vec![0u8; n];
    s.read_exact(&mut body).map_err(|e| {
        tf!(
            "{who}: reply cut short: {e}",
            "{who} : réponse tronquée : {e}"
        )
    })?;
    let text = String::from_utf8_lossy(&body);
    if text.starts_with("ERR") {
        Ok(())
    } else {
        Err(tf!(
            "{who} replied {:?} (want ERR ...)",
            "{who} a répondu {:?} (ERR ... attendu)",
            cut(&text)
        ))
    }
}
