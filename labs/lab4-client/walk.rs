//! Lab 4 walkthrough: the 7-step handoff, a BUSY answer, a malformed frame, a worker killed
//! mid-request and restarted by the lab 3 watchdog.

use crate::error::{Error, Result};
use crate::frame;
use crate::tr;
use crate::walkthrough::Walk;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::os::unix::net::UnixStream;

pub fn walk(w: &mut Walk) -> Result<()> {
    let dir = crate::fifo::private_dir()?;
    let d = dir.path().display().to_string();
    let events = dir.path().join("events.jsonl");
    let (wd, client) = (w.bin("watchdog"), w.bin("client"));
    // The events file lives beside DIR's sockets; it is the only file left at the end.
    let ev = events.display().to_string();

    w.step(tr!(w, "A dispatcher and two workers, started by the lab 3 watchdog, on Unix sockets", "Un répartiteur et deux ouvriers, lancés par le chien de garde du TP 3, sur des sockets Unix"));
    w.say(tr!(
        w,
        "socket(AF_UNIX, SOCK_STREAM), bind to a path, listen: each server gets an address in the
         file system (type `s` in ls -l). Messages are frames: a 4-byte big-endian length, then
         that many bytes of text, because a stream has no message boundaries of its own. The
         watchdog starts them all and restarts any that dies (lab 3).",
        "socket(AF_UNIX, SOCK_STREAM), bind sur un chemin, listen : chaque serveur a une adresse
         dans le système de fichiers (type `s` dans ls -l). Les messages sont des trames : une
         longueur de 4 octets gros-boutiste, puis autant d'octets de texte, car un flot n'a pas de
         frontières de messages à lui. Le chien de garde les lance tous et relance celui qui meurt
         (TP 3)."
    ));
    let mut sup = w.spawn(&[
        &wd,
        "--serve",
        "lab4",
        "--secondaries",
        "2",
        "--work-ms",
        "1500",
        "--heartbeat-ms",
        "50",
        "--hang-ms",
        "3000",
        "--events",
        &ev,
        "--dir",
        &d,
    ])?;
    // The three start in any order: wait for three "listening" lines.
    for _ in 0..3 {
        sup.wait_for("listening on")?;
    }
    let _ = w.shell(&["ls", "-l", &d]);
    w.pause(&tr!(
        w,
        format!(
            "the servers listen: `ls -l {d}` and `ipclab ps {}` in another terminal",
            sup.pid()
        ),
        format!(
            "les serveurs écoutent : `ls -l {d}` et `ipclab ps {}` dans un autre terminal",
            sup.pid()
        )
    ));

    w.step(tr!(
        w,
        "One client: the 7 steps",
        "Un client : les 7 étapes"
    ));
    w.say(tr!(
        w,
        "1 the client connects to the dispatcher; 2 the dispatcher asks a worker FREE?; 3 a free
         worker says YES (and is reserved); 4 the dispatcher sends the client the worker's socket
         path and closes; 5 the client sends its request to the worker; 6 the worker answers and
         closes; 7 the dispatcher asks the worker DONE? and it says YES once it has finished.",
        "1 le client se connecte au répartiteur ; 2 le répartiteur demande FREE? à un ouvrier ; 3
         un ouvrier libre répond YES (et se réserve) ; 4 le répartiteur envoie au client le chemin
         de la socket de l'ouvrier et ferme ; 5 le client envoie sa requête à l'ouvrier ; 6
         l'ouvrier répond et ferme ; 7 le répartiteur demande DONE? à l'ouvrier, qui répond YES une
         fois son travail fini."
    ));
    let (code, out) = w.shell(&[&client, "--dir", &d, "--request", "hello"])?;
    w.expect(
        code == 0 && out.contains("HELLO"),
        tr!(
            w,
            "the client got its answer from a worker",
            "le client a reçu sa réponse d'un ouvrier"
        ),
    );
    sup.wait_for("7 worker-")?;
    w.expect(true, "step 7: the dispatcher heard DONE from the worker");

    w.step(tr!(
        w,
        "Three clients at once for two workers: one is told BUSY",
        "Trois clients à la fois pour deux ouvriers : l'un reçoit BUSY"
    ));
    w.say(tr!(
        w,
        "Each request takes 1.5 s. The dispatcher takes connections one at a time, in the order
         they reached its listening socket: the first two it accepts reserve both workers, which
         then answer NO at once; the third it accepts gets an explicit BUSY and the connection
         closes, instead of waiting. Which client is third is not decided by its name: it is the
         one whose connect() the kernel queued last, which depends on how the three processes
         happened to be scheduled.",
        "Chaque requête prend 1,5 s. Le répartiteur prend les connexions une à une, dans l'ordre où
         elles sont arrivées sur sa socket d'écoute : les deux premières acceptées réservent les
         deux ouvriers, qui répondent ensuite NO aussitôt ; la troisième acceptée reçoit un BUSY
         explicite et la connexion se ferme, au lieu d'attendre. Quel client est le troisième ne
         dépend pas de son nom : c'est celui dont le noyau a mis le connect() en file en dernier,
         ce qui dépend de l'ordonnancement des trois processus."
    ));
    let kids: Vec<crate::walkthrough::Live> = (1..=3)
        .map(|i| w.spawn(&[&client, "--dir", &d, "--request", &format!("c{i}")]))
        .collect::<Result<_>>()?;
    let mut codes = Vec::new();
    let mut busy = Vec::new();
    for (i, k) in kids.into_iter().enumerate() {
        let code = k.finish()?.0;
        if code == 3 {
            busy.push(format!("c{}", i + 1));
        }
        codes.push(code);
    }
    codes.sort();
    w.say(&tr!(
        w,
        format!("This time {} was told BUSY.", busy.join(", ")),
        format!("Cette fois, {} a reçu BUSY.", busy.join(", "))
    ));
    w.expect(
        codes == [0, 0, 3],
        &tr!(
            w,
            format!("two served, one BUSY (exit statuses {codes:?})"),
            format!("deux servis, un BUSY (codes de sortie {codes:?})")
        ),
    );
    sup.wait_for("7 worker-")?;
    sup.wait_for("7 worker-")?;

    w.step(tr!(
        w,
        "A malformed frame gets an error, never a crash",
        "Une trame mal formée reçoit une erreur, jamais un plantage"
    ));
    let mut s = UnixStream::connect(dir.path().join("dispatcher.sock"))
        .map_err(|e| Error::io(&e, "connect", "dispatcher.sock"))?;
    println!(
        "   {}",
        tr!(
            w,
            "(sending a frame that claims 4294967295 bytes)",
            "(envoi d'une trame qui annonce 4294967295 octets)"
        )
    );
    std::io::Write::write_all(&mut s, &[0xff, 0xff, 0xff, 0xff])
        .map_err(|e| Error::io(&e, "write", "dispatcher.sock"))?;
    let reply = frame::read(&mut s).ok().flatten().unwrap_or_default();
    println!("   {} {reply}", tr!(w, "reply:", "réponse :"));
    w.expect(
        reply.starts_with("ERR malformed frame"),
        tr!(
            w,
            "the dispatcher answered ERR and kept running",
            "le répartiteur a répondu ERR et continue"
        ),
    );

    w.step(tr!(w, "A worker killed mid-request: its client gets an error, the watchdog restarts it", "Un ouvrier tué en pleine requête : son client reçoit une erreur, le chien de garde le relance"));
    let mut c = w.spawn(&[&client, "--dir", &d, "--request", "doomed"])?;
    let line = c.wait_for("4 sent to")?;
    let n = crate::walkthrough::number_after(&line, "/worker-").unwrap_or(1);
    let busy = sup.wait_for("5 request received: doomed")?;
    let victim = crate::walkthrough::number_after(&busy, &format!("[worker-{n} ")).unwrap_or(0);
    println!(
        "   $ kill -9 {victim}   (worker-{n}, {})",
        tr!(w, "busy with the request", "occupé par la requête")
    );
    crate::process::signal(Pid::from_raw(victim), Signal::SIGKILL)?;
    let (code, out) = c.finish()?;
    w.expect(
        code == 1 && out.contains("closed the connection before answering"),
        tr!(
            w,
            "the client reported the worker's death",
            "le client a signalé la mort de l'ouvrier"
        ),
    );
    sup.wait_for(&format!("\"event\":\"restart\",\"role\":\"worker-{n}\""))?;
    w.expect(
        true,
        tr!(w, "the watchdog restarted the worker (it rebinds the dead socket's path)", "le chien de garde a relancé l'ouvrier (il se lie de nouveau au chemin de la socket morte)"),
    );
    let (code, out) = w.shell(&[&client, "--dir", &d, "--request", "again"])?;
    w.expect(code == 0 && out.contains("AGAIN"), "served again");

    w.step(tr!(
        w,
        "SIGTERM to the watchdog: workers, then the dispatcher, each removes its socket",
        "SIGTERM au chien de garde : les ouvriers, puis le répartiteur, chacun supprime sa socket"
    ));
    crate::process::signal(Pid::from_raw(sup.pid()), Signal::SIGTERM)?;
    let (code, _) = sup.finish()?;
    w.expect(code == 0, "the watchdog exited 0");
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    w.expect(
        left == ["events.jsonl"],
        &tr!(
            w,
            format!("only the events file is left ({left:?})"),
            format!("seul le fichier d'événements reste ({left:?})")
        ),
    );
    Ok(())
}
