//! Lab 3 walkthrough: a watchdog restarts a killed server, a hung one, and main; then stops.

use crate::error::{Error, Result};
use crate::tr;
use crate::walkthrough::Walk;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

pub fn walk(w: &mut Walk) -> Result<()> {
    let dir = crate::fifo::private_dir()?;
    let events = dir.path().join("events.jsonl");
    let ev = events.display().to_string();
    let wd = w.bin("watchdog");

    w.step(tr!(
        w,
        "The watchdog starts main and two secondaries itself (3.a)",
        "Le chien de garde lance lui-même le principal et deux secondaires (3.a)"
    ));
    w.say(tr!(
        w,
        "Who starts whom decides who can reap and restart whom: only a parent can wait for a child.
         So the watchdog forks and execs every server; main and the secondaries talk through FIFO
         pairs the watchdog created, and each writes a heartbeat into the watchdog's own
         shared-memory table every 50 ms.",
        "Qui lance qui décide qui peut récupérer et relancer qui : seul un père peut attendre son
         fils. Le chien de garde lance donc chaque serveur par fork et exec ; le principal et les
         secondaires se parlent par des paires de FIFO que le chien de garde a créées, et chacun
         écrit un battement de cœur dans la table en mémoire partagée du chien de garde toutes les
         50 ms."
    ));
    // Under strace (signals only, the watchdog alone), so that step 3 can show the SIGCHLD a
    // stop sends; without strace the watchdog runs as is.
    let siglog =
        tempfile::NamedTempFile::new().map_err(|e| Error::io(&e, "create", "strace log"))?;
    let siglog_s = siglog.path().display().to_string();
    let traced = crate::trace::strace_usable().is_ok();
    let mut argv: Vec<&str> = Vec::new();
    if traced {
        argv.extend([
            "strace",
            "-qq",
            "-e",
            "trace=none",
            "-e",
            "signal=SIGCHLD",
            "-o",
            &siglog_s,
        ]);
    }
    argv.extend([
        wd.as_str(),
        "--secondaries",
        "2",
        "--heartbeat-ms",
        "50",
        "--hang-ms",
        "300",
        "--events",
        &ev,
    ]);
    let mut live = w.spawn(&argv)?;
    let pid_of = |live: &mut crate::walkthrough::Live, role: &str| -> Result<i32> {
        let line = live.wait_for(&format!("\"event\":\"start\",\"role\":\"{role}\""))?;
        crate::walkthrough::number_after(&line, "\"pid\":")
            .ok_or_else(|| Error::runtime(format!("no pid for {role}")))
    };
    let main = pid_of(&mut live, "main")?;
    let s1 = pid_of(&mut live, "secondary-1")?;
    let s2 = pid_of(&mut live, "secondary-2")?;
    let wpid = if traced {
        crate::inspect::children(live.pid())
            .first()
            .map(|p| p.pid)
            .ok_or_else(|| Error::runtime("the watchdog is not under strace"))?
    } else {
        live.pid()
    };
    w.ps(&[wpid, main, s1, s2]);
    w.pause(&tr!(w, format!(
        "the watchdog ({wpid}) and its servers run: `ipclab ps {wpid}` in another terminal"
    ), format!("le chien de garde ({wpid}) et ses serveurs tournent : `ipclab ps {wpid}` dans un autre terminal"
    )));
    let children = crate::inspect::children(wpid);
    w.expect(
        children.len() == 3,
        tr!(
            w,
            "the watchdog is the parent of all three servers",
            "le chien de garde est le père des trois serveurs"
        ),
    );

    w.step(tr!(
        w,
        "SIGKILL a secondary: SIGCHLD, waitpid, immediate restart",
        "SIGKILL sur un secondaire : SIGCHLD, waitpid, relance immédiate"
    ));
    w.say(tr!(
        w,
        "A parent is told of a child's death by SIGCHLD; waitpid then gives the status. The handler
         only writes a byte to a self-pipe; the main loop, woken in poll, reaps with
         waitpid(-1, WNOHANG) until nothing is left, so deaths that arrive together are all seen.",
        "Un père apprend la mort d'un fils par SIGCHLD ; waitpid donne ensuite le code. Le
         gestionnaire ne fait qu'écrire un octet dans un self-pipe ; la boucle principale,
         réveillée dans poll, récupère par waitpid(-1, WNOHANG) jusqu'à ce qu'il ne reste rien, si
         bien que des morts arrivées ensemble sont toutes vues."
    ));
    println!("   $ kill -9 {s1}");
    crate::process::signal(Pid::from_raw(s1), Signal::SIGKILL)?;
    let line = live.wait_for("\"event\":\"restart\",\"role\":\"secondary-1\"")?;
    w.expect(
        line.contains("latency_ms"),
        tr!(
            w,
            "secondary-1 restarted, with its latency to the first heartbeat",
            "secondary-1 relancé, avec son délai jusqu'au premier battement"
        ),
    );

    w.step(
        tr!(w, "SIGSTOP a secondary: a SIGCHLD comes, waitpid shows nothing, the heartbeat stops (3.c)", "SIGSTOP sur un secondaire : un SIGCHLD arrive, waitpid ne montre rien, le battement s'arrête (3.c)"),
    );
    w.say(tr!(
        w,
        "A parent is told of a child's stop too: the kernel sends it SIGCHLD with
         si_code=CLD_STOPPED, unless the parent set SA_NOCLDSTOP in its sigaction. But
         waitpid(-1, WNOHANG) reports only exits (WUNTRACED, a waitpid option, would report the
         stop), so the watchdog's loop finds nothing to reap; and a server stuck in a loop or a
         deadlock sends no signal at all. The heartbeat tells: after 300 ms of silence the
         watchdog sends SIGTERM and SIGCONT (a stopped process keeps SIGTERM pending until
         continued), SIGKILL after the grace if needed, reaps it, and restarts it.",
        "Un père est aussi averti de l'arrêt d'un fils : le noyau lui envoie SIGCHLD avec
         si_code=CLD_STOPPED, sauf s'il a mis SA_NOCLDSTOP dans son sigaction. Mais waitpid(-1,
         WNOHANG) ne signale que les fins (WUNTRACED, une option de waitpid, signalerait l'arrêt),
         donc la boucle du chien de garde n'a rien à récupérer ; et un serveur coincé dans une
         boucle ou un interblocage n'envoie aucun signal. Le battement, lui, le dit : après 300 ms
         de silence le chien de garde envoie SIGTERM et SIGCONT (un processus arrêté garde SIGTERM
         en attente jusqu'à sa reprise), SIGKILL après le délai de grâce si besoin, le récupère et
         le relance."
    ));
    println!("   $ kill -STOP {s2}");
    crate::process::signal(Pid::from_raw(s2), Signal::SIGSTOP)?;
    live.wait_for("\"event\":\"hang\",\"role\":\"secondary-2\"")?;
    if traced {
        let log = std::fs::read_to_string(siglog.path()).unwrap_or_default();
        let stop = log
            .lines()
            .find(|l| l.contains("CLD_STOPPED") && l.contains(&format!("si_pid={s2},")));
        println!(
            "   {}",
            tr!(
                w,
                format!("strace of the watchdog (signals only), the stop of {s2}:"),
                format!("strace du chien de garde (signaux seulement), l'arrêt de {s2} :")
            )
        );
        if let Some(l) = stop {
            println!("   | {l}");
        }
        w.expect(
            stop.is_some(),
            tr!(
                w,
                "the watchdog got SIGCHLD with si_code=CLD_STOPPED",
                "le chien de garde a reçu SIGCHLD avec si_code=CLD_STOPPED"
            ),
        );
    }
    let line = live.wait_for("\"event\":\"restart\",\"role\":\"secondary-2\"")?;
    w.expect(
        line.contains("latency_ms"),
        tr!(
            w,
            "the hung secondary was detected, killed and restarted",
            "le secondaire bloqué a été détecté, tué et relancé"
        ),
    );

    w.step(tr!(
        w,
        "SIGKILL main: only main is restarted",
        "SIGKILL sur le principal : seul le principal est relancé"
    ));
    w.say(tr!(
        w,
        "The secondaries are the watchdog's children, not main's: they keep running, and the new
         main reopens the same FIFOs. (Were main their parent, its death would orphan them.)",
        "Les secondaires sont les fils du chien de garde, pas du principal : ils continuent, et le
         nouveau principal rouvre les mêmes FIFO. (Si le principal était leur père, sa mort les
         rendrait orphelins.)"
    ));
    let before: Vec<i32> = crate::inspect::children(wpid)
        .iter()
        .map(|p| p.pid)
        .filter(|p| *p != main)
        .collect();
    println!("   $ kill -9 {main}");
    crate::process::signal(Pid::from_raw(main), Signal::SIGKILL)?;
    live.wait_for("\"event\":\"restart\",\"role\":\"main\"")?;
    let after: Vec<i32> = crate::inspect::children(wpid)
        .iter()
        .map(|p| p.pid)
        .collect();
    w.expect(
        before.iter().all(|p| after.contains(p)),
        tr!(
            w,
            "the secondaries kept their pids",
            "les secondaires ont gardé leur pid"
        ),
    );

    w.step(tr!(
        w,
        "SIGTERM the watchdog: orderly shutdown",
        "SIGTERM au chien de garde : arrêt dans l'ordre"
    ));
    w.say(
        tr!(w, "Secondaries first, then main, each reaped; the table unlinked, the FIFOs removed; exit 0.", "Les secondaires d'abord, puis le principal, chacun récupéré ; la table supprimée, les FIFO supprimées ; sortie 0."),
    );
    println!("   $ kill -TERM {wpid}");
    crate::process::signal(Pid::from_raw(wpid), Signal::SIGTERM)?;
    let (code, _) = live.finish()?;
    w.expect(code == 0, "the watchdog exited 0");
    let log = std::fs::read_to_string(&events).unwrap_or_default();
    let parsed = log
        .lines()
        .all(|l| l.starts_with("{\"ts_ms\":") && l.ends_with('}'));
    w.expect(
        parsed && log.lines().count() >= 12,
        tr!(
            w,
            "every event is one JSON line in the events file",
            "chaque événement est une ligne JSON dans le fichier d'événements"
        ),
    );
    w.expect(
        log.lines()
            .last()
            .is_some_and(|l| l.contains("\"role\":\"watchdog\"") && l.contains("\"status\":0")),
        tr!(
            w,
            "its last event is its own clean exit",
            "son dernier événement est sa propre sortie propre"
        ),
    );
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    w.expect(
        left == ["events.jsonl"],
        tr!(
            w,
            "only the events file is left in its directory (FIFOs removed)",
            "seul le fichier d'événements reste dans son répertoire (FIFO supprimées)"
        ),
    );
    control_over_data(w)
}

/// 3.b, the wrong way: orders through the servers' own data FIFOs.
fn control_over_data(w: &mut Walk) -> Result<()> {
    let dir = crate::fifo::private_dir()?;
    let events = dir.path().join("events.jsonl");
    let ev = events.display().to_string();
    let wd = w.bin("watchdog");
    w.step(tr!(
        w,
        "--fault control-over-data: an order through a data FIFO is never read (3.b)",
        "--fault control-over-data : un ordre passé par une FIFO de données n'est jamais lu (3.b)"
    ));
    w.say(tr!(
        w,
        "The same watchdog, but told to send its orders through the servers' data FIFOs: on a
         hang it writes RESTART into the secondary's ping FIFO instead of signalling it. A
         frozen secondary reads nothing, so the order sits in the FIFO (and would have landed
         between main's pings anyway): the hang is detected, and nothing is restarted.",
        "Le même chien de garde, mais réglé pour envoyer ses ordres par les FIFO de données des
         serveurs : sur un blocage il écrit RESTART dans la FIFO ping du secondaire au lieu de lui
         envoyer un signal. Un secondaire gelé ne lit rien, l'ordre reste donc dans la FIFO (et
         serait de toute façon tombé au milieu des pings du principal) : le blocage est détecté, et
         rien n'est relancé."
    ));
    let mut live = w.spawn(&[
        &wd,
        "--secondaries",
        "1",
        "--heartbeat-ms",
        "50",
        "--hang-ms",
        "300",
        "--events",
        &ev,
        "--fault",
        "control-over-data",
    ])?;
    let line = live.wait_for("\"event\":\"start\",\"role\":\"secondary-1\"")?;
    let s1 = crate::walkthrough::number_after(&line, "\"pid\":")
        .ok_or_else(|| Error::runtime("no pid for secondary-1"))?;
    println!("   $ kill -STOP {s1}");
    crate::process::signal(Pid::from_raw(s1), Signal::SIGSTOP)?;
    live.wait_for("FAULT control-over-data")?;
    w.ps(&[s1]);
    w.pause(&tr!(w, format!(
        "secondary {s1} is stopped (T) and RESTART waits unread in its FIFO: `ps -o pid,stat -p {s1}`"
    ), format!("le secondaire {s1} est arrêté (T) et RESTART attend, non lu, dans sa FIFO : `ps -o pid,stat -p {s1}`"
    )));
    println!("   $ kill -TERM {}", live.pid());
    crate::process::signal(Pid::from_raw(live.pid()), Signal::SIGTERM)?;
    let (code, _) = live.finish()?;
    w.expect(code == 0, "the watchdog exited 0");
    let log = std::fs::read_to_string(&events).unwrap_or_default();
    let about = |ev: &str| {
        log.lines().any(|l| {
            l.contains(&format!("\"event\":\"{ev}\"")) && l.contains("\"role\":\"secondary-1\"")
        })
    };
    w.expect(
        about("hang") && !about("restart"),
        tr!(
            w,
            "the log shows the hang detected and nothing restarted",
            "le journal montre le blocage détecté et rien de relancé"
        ),
    );
    Ok(())
}
