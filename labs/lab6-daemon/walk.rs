//! Lab 6 walkthrough: how a process becomes a daemon, and how it is controlled afterwards.

use crate::error::Result;
use crate::inspect;
use crate::tr;
use crate::walkthrough::{number_after, Walk};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

pub fn walk(w: &mut Walk) -> Result<()> {
    let dir = crate::fifo::private_dir()?;
    let d = dir.path().display().to_string();
    let daemon = w.bin("daemon");
    let me = std::process::id() as i32;

    w.step(tr!(w, "daemon start: fork, setsid, fork, umask, chdir /, close fds, pidfile", "daemon start : fork, setsid, fork, umask, chdir /, fermeture des descripteurs, fichier de pid"));
    w.say(tr!(
        w,
        "The launcher forks and waits only for the middle process. The middle process calls setsid:
         a new session with no controlling terminal, itself the leader. It forks again and exits,
         so the daemon is not a session leader and can never acquire a terminal. The daemon sets
         umask, chdir(\"/\") (so it pins no mounted file system), closes every inherited fd, puts
         /dev/null on 0/1/2, takes the pidfile lock (flock) and tells the launcher it is ready.",
        "Le lanceur crée un fils et n'attend que ce processus intermédiaire. Celui-ci appelle
         setsid : une nouvelle session sans terminal de contrôle, dont il est le chef. Il crée à
         son tour un fils et se termine, si bien que le démon n'est pas chef de session et ne peut
         jamais acquérir de terminal. Le démon fixe son umask, fait chdir(\"/\") (pour ne bloquer
         aucun système de fichiers monté), ferme tous les descripteurs hérités, met /dev/null sur
         0/1/2, prend le verrou du fichier de pid (flock) et dit au lanceur qu'il est prêt."
    ));
    let (code, out) = w.shell(&[&daemon, "start", "--dir", &d])?;
    let pid = number_after(&out, "daemon ").unwrap_or(0);
    w.expect(
        code == 0 && pid > 0,
        tr!(
            w,
            "start exited 0 and named the daemon's pid",
            "start s'est terminé avec 0 et a donné le pid du démon"
        ),
    );
    w.pause(&tr!(w, format!(
        "daemon {pid} runs on its own: `ps -o pid,ppid,sid,tty,stat,comm -p {pid}` in another terminal"
    ), format!("le démon {pid} tourne seul : `ps -o pid,ppid,sid,tty,stat,comm -p {pid}` dans un autre terminal"
    )));

    w.step(tr!(
        w,
        "The evidence: parent, session, terminal, descriptors",
        "Les preuves : père, session, terminal, descripteurs"
    ));
    let (code, out) = w.shell(&[&daemon, "status", "--dir", &d])?;
    w.expect(
        code == 0,
        tr!(
            w,
            "status exits 0 while running",
            "status sort avec 0 tant qu'il tourne"
        ),
    );
    let _ = w.shell(&[
        "ps",
        "-o",
        "pid,ppid,pgid,sid,tty,stat,comm",
        "-p",
        &pid.to_string(),
    ]);
    let info = inspect::info(pid);
    w.expect(
        info.as_ref().is_some_and(|i| i.session != pid),
        tr!(
            w,
            "not a session leader (sid != pid)",
            "pas chef de session (sid != pid)"
        ),
    );
    w.expect(
        info.as_ref().is_some_and(|i| i.tty_nr == 0),
        tr!(
            w,
            "no controlling terminal (tty ?)",
            "pas de terminal de contrôle (tty ?)"
        ),
    );
    w.expect(
        info.as_ref().is_some_and(|i| i.ppid == me),
        &tr!(
            w,
            format!(
                "its parent is the walkthrough ({me}, the nearest subreaper), not the launcher"
            ),
            format!("son père est le déroulé ({me}, le subreaper le plus proche), pas le lanceur")
        ),
    );
    w.expect(
        out.contains("session leader: no"),
        tr!(w, "status says the same", "status dit la même chose"),
    );
    let _ = w.shell(&["ls", "-l", &format!("/proc/{pid}/fd")]);
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    w.expect(
        fds.iter().filter(|f| f.as_str() == "/dev/null").count() == 3,
        tr!(w, "0, 1 and 2 are /dev/null", "0, 1 et 2 sont /dev/null"),
    );
    let sockets: std::collections::BTreeSet<&String> =
        fds.iter().filter(|f| f.starts_with("socket:")).collect();
    w.say(&tr!(w, format!(
        "Besides 0-2: the locked pidfile and the log, and {} descriptor(s) on {} socket(s). Those
         are the daemon's own, opened after it closed everything it inherited: the self-pipe of
         its signal handling. signal-hook makes it a Unix socket pair: one end the main loop polls,
         the other duplicated once per signal handled (SIGTERM, SIGHUP, SIGINT), which is why
         several fds name the same socket:[inode].",
        fds.iter().filter(|f| f.starts_with("socket:")).count(),
        sockets.len()
    ), format!("En plus de 0-2 : le fichier de pid verrouillé et le journal, et {} descripteur(s) sur {}
         socket(s). Ce sont ceux du démon, ouverts après qu'il a fermé tout ce dont il héritait :
         le self-pipe de sa gestion des signaux. signal-hook en fait une paire de sockets Unix : un
         bout que la boucle principale surveille, l'autre dupliqué une fois par signal géré
         (SIGTERM, SIGHUP, SIGINT), d'où plusieurs descripteurs qui nomment le même socket:[inode].",
        fds.iter().filter(|f| f.starts_with("socket:")).count(),
        sockets.len()
    )));

    w.step(tr!(
        w,
        "A second start is refused: the pidfile is locked",
        "Un second start est refusé : le fichier de pid est verrouillé"
    ));
    let (code, _) = w.shell(&[&daemon, "start", "--dir", &d])?;
    w.expect(
        code == 2,
        tr!(
            w,
            "second start refused with exit status 2",
            "second start refusé avec le code 2"
        ),
    );

    w.step(tr!(
        w,
        "SIGHUP reopens the log (log rotation), SIGTERM stops the daemon",
        "SIGHUP rouvre le journal (rotation des journaux), SIGTERM arrête le démon"
    ));
    w.say(tr!(
        w,
        "logrotate renames daemon.log; the daemon would go on writing to the renamed file through
         its open fd. SIGHUP makes it reopen daemon.log by name. `stop` sends SIGTERM and waits
         for the exit through a pidfd: the daemon removes its pidfile and exits 0. Signals that
         arrive together are handled in order, so the SIGHUP line is logged before the exit.",
        "logrotate renomme daemon.log ; le démon continuerait d'écrire dans le fichier renommé par
         son descripteur ouvert. SIGHUP lui fait rouvrir daemon.log par son nom. `stop` envoie
         SIGTERM et attend la fin par un pidfd : le démon supprime son fichier de pid et se termine
         avec 0. Des signaux arrivés ensemble sont traités dans l'ordre, donc la ligne SIGHUP est
         journalisée avant la fin."
    ));
    let log = dir.path().join("daemon.log");
    let _ = w.shell(&[
        "mv",
        &log.display().to_string(),
        &format!("{d}/daemon.log.1"),
    ]);
    println!("   $ kill -HUP {pid}");
    crate::process::signal(Pid::from_raw(pid), Signal::SIGHUP)?;
    let (code, _) = w.shell(&[&daemon, "stop", "--dir", &d])?;
    w.expect(
        code == 0,
        tr!(w, "stop exited 0", "stop s'est terminé avec 0"),
    );
    let status = w.adopted.iter().find(|r| r.0 == pid).map(|r| r.1);
    w.expect(
        status == Some(0),
        tr!(
            w,
            "the daemon exited with status 0 (reaped by the walkthrough, its new parent)",
            "le démon s'est terminé avec 0 (récupéré par le déroulé, son nouveau père)"
        ),
    );
    let _ = w.shell(&["sh", "-c", &format!("cat {d}/daemon.log.1 {d}/daemon.log")]);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    w.expect(
        text.contains("SIGHUP: log reopened"),
        tr!(
            w,
            "a new daemon.log was opened on SIGHUP",
            "un nouveau daemon.log a été ouvert sur SIGHUP"
        ),
    );
    w.expect(
        text.contains("SIGTERM: removing pidfile"),
        tr!(
            w,
            "the daemon logged its clean exit",
            "le démon a journalisé sa sortie propre"
        ),
    );
    w.expect(
        !dir.path().join("daemon.pid").exists(),
        tr!(w, "the pidfile is gone", "le fichier de pid a disparu"),
    );

    w.step(tr!(
        w,
        "Not running: status 3, stop 0 (LSB init-script codes)",
        "Arrêté : status 3, stop 0 (codes des scripts d'init LSB)"
    ));
    let (code, _) = w.shell(&[&daemon, "status", "--dir", &d])?;
    w.expect(code == 3, tr!(w, "status exits 3", "status sort avec 3"));
    let (code, _) = w.shell(&[&daemon, "stop", "--dir", &d])?;
    w.expect(
        code == 0,
        tr!(
            w,
            "stop exits 0 with a message",
            "stop sort avec 0 et un message"
        ),
    );

    w.step(tr!(
        w,
        "A crash leaves a stale pidfile: the lock, not the file, decides",
        "Un plantage laisse un fichier de pid périmé : c'est le verrou, pas le fichier, qui décide"
    ));
    let (_, out) = w.shell(&[&daemon, "start", "--dir", &d])?;
    let pid = number_after(&out, "daemon ").unwrap_or(0);
    println!("   $ kill -9 {pid}");
    crate::process::signal(Pid::from_raw(pid), Signal::SIGKILL)?;
    wait_gone(w, pid);
    let (code, out) = w.shell(&[&daemon, "status", "--dir", &d])?;
    w.expect(
        code == 3 && out.contains("stale"),
        tr!(
            w,
            "status sees a stale pidfile, exits 3",
            "status voit un fichier de pid périmé, sort avec 3"
        ),
    );
    let (code, _) = w.shell(&[&daemon, "start", "--dir", &d])?;
    w.expect(
        code == 0,
        tr!(
            w,
            "start takes the stale pidfile over",
            "start reprend le fichier de pid périmé"
        ),
    );
    let (code, _) = w.shell(&[&daemon, "stop", "--dir", &d])?;
    w.expect(
        code == 0,
        tr!(w, "stop exited 0", "stop s'est terminé avec 0"),
    );
    w.reap_adopted();
    Ok(())
}

/// The killed daemon is our adopted child: wait for it, which also reaps it.
fn wait_gone(w: &Walk, pid: i32) {
    if let Ok(st) = crate::process::wait_for(Pid::from_raw(pid)) {
        println!(
            "   {} {pid} : {})",
            tr!(
                w,
                "(walkthrough, a subreaper, reaped adopted",
                "(le déroulé, subreaper, a récupéré l'adopté"
            ),
            crate::process::describe(&st)
        );
    }
    let _ = w;
}
