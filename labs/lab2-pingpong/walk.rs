//! Lab 2 walkthrough: FIFO ping-pong, the shutdown order, and what each wrong order leaves.

use crate::error::Result;
use crate::fifo;
use crate::tr;
use crate::walkthrough::{number_after, pid_of_role, Walk};
use rand::RngExt;

pub fn walk(w: &mut Walk) -> Result<()> {
    let n: u64 = rand::rng().random_range(3..=6);
    let dir = fifo::private_dir()?;
    let d = dir.path().display().to_string();
    let pingpong = w.bin("pingpong");

    w.step(tr!(
        w,
        "What main creates first: two FIFOs in a private directory",
        "Ce que main crée d'abord : deux FIFO dans un répertoire privé"
    ));
    w.say(tr!(
        w,
        "A FIFO (named pipe) is a pipe with a name in the file system: mkfifo(path, 0600) makes it,
         any process allowed by its mode can open it. The directory is private (0700), so no
         other user can open, replace or delete our FIFOs. `p` in ls -l is the FIFO type.",
        "Une FIFO (tube nommé) est un tube qui a un nom dans le système de fichiers :
         mkfifo(chemin, 0600) la crée, et tout processus que son mode autorise peut l'ouvrir. Le
         répertoire est privé (0700) : aucun autre utilisateur ne peut ouvrir, remplacer ni
         supprimer nos FIFO. `p` dans ls -l est le type FIFO."
    ));
    {
        let pair = fifo::FifoPair::create(dir.path(), "ping", "pong")?;
        let _ = w.shell(&["ls", "-l", &d]);
        pair.remove()?;
    }

    w.step(&tr!(
        w,
        format!("{n} exchanges, then the clean shutdown (2.a)"),
        format!("{n} échanges, puis l'arrêt propre (2.a)")
    ));
    w.say(tr!(
        w,
        "main creates the FIFOs, forks and execs the secondary, sends `ping i` through DIR/ping;
         the secondary answers `pong i` through DIR/pong. Both open ping first, then pong: open()
         on a FIFO blocks until the other end is opened, so opposite orders would deadlock.
         After pong N the secondary exits; main, blocked in waitpid, collects its exit status
         (this is reaping), removes the FIFOs, and exits last.",
        "main crée les FIFO, lance le secondaire par fork et exec, envoie `ping i` par DIR/ping ;
         le secondaire répond `pong i` par DIR/pong. Tous deux ouvrent ping d'abord, puis pong :
         open() sur une FIFO bloque jusqu'à ce que l'autre bout soit ouvert, donc des ordres
         opposés s'interbloqueraient. Après pong N le secondaire se termine ; main, bloqué dans
         waitpid, récupère son code de sortie (c'est la récupération du fils), supprime les FIFO et
         se termine en dernier."
    ));
    let (code, out) = w.shell(&[&pingpong, "--exchanges", &n.to_string(), "--dir", &d])?;
    let expected: Vec<String> = (1..=n)
        .flat_map(|i| [format!("ping {i}"), format!("pong {i}")])
        .collect();
    let got: Vec<&str> = out.lines().filter(|l| !l.starts_with('[')).collect();
    w.expect(
        code == 0,
        tr!(
            w,
            "main exited with status 0",
            "main s'est terminé avec le code 0"
        ),
    );
    w.expect(
        got == expected,
        &tr!(
            w,
            format!("stdout is exactly ping 1, pong 1 ... pong {n}"),
            format!("la sortie standard est exactement ping 1, pong 1 ... pong {n}")
        ),
    );
    w.expect(
        out.contains("exited with status 0; reaped"),
        tr!(
            w,
            "main reaped the secondary before exiting",
            "main a récupéré le secondaire avant de se terminer"
        ),
    );
    w.expect(
        is_empty(dir.path()),
        tr!(
            w,
            "DIR is empty again: both FIFOs removed",
            "DIR est de nouveau vide : les deux FIFO sont supprimées"
        ),
    );

    w.step(tr!(
        w,
        "The same run under strace",
        "La même exécution sous strace"
    ));
    w.say(tr!(
        w,
        "mknodat(..., S_IFIFO|0600) is mkfifo. clone is fork (glibc's fork uses clone), execve
         starts the secondary. The openat of DIR/ping by main returns only once the secondary
         has opened it too. Each ping is one write and one read; wait4 returns the secondary's
         status; unlink removes each FIFO.",
        "mknodat(..., S_IFIFO|0600) est mkfifo. clone est fork (le fork de la glibc utilise clone),
         execve lance le secondaire. L'openat de DIR/ping par main ne revient qu'une fois que le
         secondaire l'a ouvert aussi. Chaque ping est un write et un read ; wait4 renvoie le code
         de sortie du secondaire ; unlink supprime chaque FIFO."
    ));
    w.strace(
        &[&pingpong, "--exchanges", "2", "--dir", &d],
        Some(dir.path()),
    )?;

    w.step(tr!(
        w,
        "Fault no-wait: main never waits, the secondary is a zombie (2.b)",
        "Erreur no-wait : main n'attend jamais, le secondaire est un zombie (2.b)"
    ));
    w.say(tr!(
        w,
        "A zombie is a process that has exited but whose parent has not yet waited for it: the
         kernel keeps its pid and exit status for the parent. ps shows it as Z / <defunct>.
         Here main learns of the exit with waitid(WNOWAIT), which leaves the child unreaped.",
        "Un zombie est un processus terminé dont le père n'a pas encore attendu la fin : le noyau
         garde son pid et son code de sortie pour le père. ps le montre comme Z / <defunct>. Ici
         main apprend la fin avec waitid(WNOWAIT), qui laisse le fils non récupéré."
    ));
    let mut live = w.spawn(&[
        &pingpong,
        "--exchanges",
        "2",
        "--dir",
        &d,
        "--fault",
        "no-wait",
    ])?;
    let line = live.wait_for("FAULT no-wait")?;
    let main_pid = live.pid();
    let sec = number_after(&line, "secondary ").unwrap_or(0);
    w.ps(&[main_pid, sec]);
    let z = crate::inspect::info(sec);
    w.expect(
        z.as_ref()
            .is_some_and(|p| p.is_zombie() && p.ppid == main_pid),
        tr!(
            w,
            "the secondary is Z, its parent still main",
            "le secondaire est Z, son père est toujours main"
        ),
    );
    w.pause(&tr!(w, format!(
        "secondary {sec} is a zombie now: `ps -o pid,ppid,stat,comm -p {sec}` in another terminal shows Z"
    ), format!("le secondaire {sec} est maintenant un zombie : `ps -o pid,ppid,stat,comm -p {sec}` dans un autre terminal montre Z"
    )));
    let _ = live.finish()?;
    w.say(tr!(w, "main has exited: its zombie child was re-parented to the walkthrough (a subreaper), which reaps it.", "main s'est terminé : son fils zombie a été rattaché au déroulé (un subreaper), qui le récupère."));
    let reaped = w.reap_adopted();
    w.expect(
        reaped.iter().any(|r| r.0 == sec) || crate::inspect::info(sec).is_none(),
        tr!(
            w,
            "the zombie is gone once reaped by its new parent",
            "le zombie disparaît une fois récupéré par son nouveau père"
        ),
    );

    w.step(tr!(
        w,
        "Fault main-first: main exits before the secondary, which is orphaned (2.b)",
        "Erreur main-first : main se termine avant le secondaire, qui devient orphelin (2.b)"
    ));
    w.say(tr!(
        w,
        "If main exits first, nobody is left to reap the secondary when it ends: it becomes an
         orphan and the kernel gives it a new parent, the nearest child subreaper (here the
         walkthrough) or PID 1. The right order is the secondary first, then main.",
        "Si main se termine en premier, plus personne ne peut récupérer le secondaire quand il
         finit : il devient orphelin et le noyau lui donne un nouveau père, le subreaper le plus
         proche (ici le déroulé) ou le PID 1. Le bon ordre : le secondaire d'abord, puis main."
    ));
    let mut live = w.spawn(&[
        &pingpong,
        "--exchanges",
        "2",
        "--dir",
        &d,
        "--fault",
        "main-first",
    ])?;
    let line = live.wait_for("I am an orphan")?;
    let sec = pid_of_role(&line, "secondary").unwrap_or(0);
    let main_pid = live.pid();
    let _ = live.child.wait();
    w.ps(&[sec]);
    w.pause(&tr!(w, format!(
        "secondary {sec} is an orphan now: `ps -o pid,ppid,comm -p {sec}` shows its new parent"
    ), format!("le secondaire {sec} est maintenant orphelin : `ps -o pid,ppid,comm -p {sec}` montre son nouveau père"
    )));
    let me = std::process::id() as i32;
    w.expect(
        crate::inspect::info(sec).is_some_and(|p| p.ppid == me),
        &tr!(
            w,
            format!("the secondary's parent is now the walkthrough ({me}), not main ({main_pid})"),
            format!(
                "le père du secondaire est maintenant le déroulé ({me}), pas main ({main_pid})"
            )
        ),
    );
    // Our Child handle already reaped main; end the orphan by closing its stdin and reap it.
    // End of file on its output comes before it is a zombie: wait for it, not WNOHANG.
    let _ = live.finish();
    let st = crate::process::wait_for(nix::unistd::Pid::from_raw(sec));
    if let Ok(st) = &st {
        println!(
            "   {} {sec} : {})",
            tr!(
                w,
                "(walkthrough, a subreaper, reaped adopted",
                "(le déroulé, subreaper, a récupéré l'adopté"
            ),
            crate::process::describe(st)
        );
    }
    w.expect(
        st.is_ok(),
        tr!(
            w,
            "the walkthrough reaped the orphan",
            "le déroulé a récupéré l'orphelin"
        ),
    );

    w.step(tr!(
        w,
        "A peer killed mid-run: the survivor sees end of file, reaps, cleans up",
        "Un pair tué en cours de route : le survivant voit la fin de fichier, récupère, nettoie"
    ));
    w.say(tr!(
        w,
        "kill -9 the secondary during the exchange: main's read on DIR/pong returns 0 (end of
         file: no writer left), main reports it, reaps the dead child (its status says SIGKILL),
         removes the FIFOs and exits 1.",
        "kill -9 sur le secondaire pendant l'échange : le read de main sur DIR/pong renvoie 0 (fin
         de fichier : plus aucun écrivain), main le signale, récupère le fils mort (son code dit
         SIGKILL), supprime les FIFO et se termine avec 1."
    ));
    let mut live = w.spawn(&[&pingpong, "--exchanges", "10000000", "--dir", &d])?;
    let line = live.wait_for("started secondary")?;
    let sec = number_after(&line, "started secondary ").unwrap_or(0);
    live.wait_for("pong 3")?;
    live.echo = false;
    println!("   $ kill -9 {sec}");
    crate::process::signal(
        nix::unistd::Pid::from_raw(sec),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    let (code, out) = quiet_finish(live)?;
    w.expect(
        code == 1,
        tr!(
            w,
            "main exited with status 1",
            "main s'est terminé avec le code 1"
        ),
    );
    w.expect(
        out.contains("killed by SIGKILL; reaped"),
        tr!(
            w,
            "main reaped the killed secondary",
            "main a récupéré le secondaire tué"
        ),
    );
    w.expect(
        is_empty(dir.path()),
        tr!(
            w,
            "DIR is empty: main removed the FIFOs",
            "DIR est vide : main a supprimé les FIFO"
        ),
    );
    Ok(())
}

/// Finishes a run that prints millions of lines: echoes only what is not a ping/pong line.
fn quiet_finish(mut live: crate::walkthrough::Live) -> Result<(i32, String)> {
    live.echo = false;
    let mut text = String::new();
    let mut hidden = 0u64;
    while let Some(line) = live.next_line()? {
        let pingpong = line.starts_with("ping ") || line.starts_with("pong ");
        if pingpong {
            hidden += 1;
        } else {
            println!("   {line}");
            text.push_str(&line);
            text.push('\n');
        }
    }
    if crate::walkthrough::fr() {
        println!("   ({hidden} lignes ping/pong non affichées)");
    } else {
        println!("   ({hidden} ping/pong lines not shown)");
    }
    let st = live
        .child
        .wait()
        .map_err(|e| crate::Error::io(&e, "waitpid", ""))?;
    let code = st.code().unwrap_or(1);
    if crate::walkthrough::fr() {
        println!("   (code de sortie {code})");
    } else {
        println!("   (exit status {code})");
    }
    Ok((code, text))
}

fn is_empty(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut r| r.next().is_none())
        .unwrap_or(false)
}
