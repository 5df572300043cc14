//! Lab 9 walkthrough: finger's port in /etc/services, what the local finger says, the daemon
//! started (pidfile, session), a client's answer compared with the local finger and its log
//! line, a long answer in many recv calls, why the sheet's shell command lets a client run
//! anything (and what the reference answers instead), a second start refused, SIGTERM.

use crate::error::Result;
use crate::tr;
use crate::walkthrough::{number_after, Walk};

pub fn walk(w: &mut Walk) -> Result<()> {
    let dir = crate::fifo::private_dir()?;
    let d = dir.path().display().to_string();
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map_or_else(|| "root".to_string(), |u| u.name);
    let port = if crate::inet::sockets("tcp")
        .iter()
        .any(|s| s.local.port() == 7979)
    {
        crate::inet::free_port()?
    } else {
        7979
    };
    let p = port.to_string();

    w.step(tr!(
        w,
        "finger's protocol and port (question 1)",
        "Le protocole et le port de finger (question 1)"
    ));
    w.say(tr!(
        w,
        "/etc/services maps service names to the ports IANA assigned. finger is TCP port 79
         (RFC 1288; there is no UDP finger). 79 is below 1024: binding it needs root, so the
         lab's daemon listens on 7979.",
        "/etc/services associe les noms de services aux ports que l'IANA leur a attribués.
         finger est le port TCP 79 (RFC 1288 ; il n'y a pas de finger sur UDP). 79 est sous
         1024 : l'associer demande root, donc le démon du TP écoute sur 7979."
    ));
    let (_, out) = w.shell(&["grep", "-w", "^finger", "/etc/services"])?;
    w.expect(
        out.contains("79/tcp"),
        tr!(
            w,
            "/etc/services: finger is 79/tcp",
            "/etc/services : finger est 79/tcp"
        ),
    );

    w.step(tr!(
        w,
        "What the local finger says",
        "Ce que dit le finger local"
    ));
    w.say(tr!(
        w,
        "finger reads /etc/passwd (login, name, home, shell), the login records, the mailbox and
         the user's ~/.plan. The daemon's answer is exactly this, asked from another machine.",
        "finger lit /etc/passwd (login, nom, répertoire, shell), les traces de connexion, la
         boîte aux lettres et le ~/.plan de l'utilisateur. La réponse du démon est exactement
         cela, demandé depuis une autre machine."
    ));
    let (code, local) = w.shell(&["finger", "-l", "-m", &me])?;
    w.expect(
        code == 0 && local.contains("Login:"),
        tr!(w, "finger knows this login", "finger connaît ce login"),
    );

    w.step(tr!(
        w,
        "fingerd: bind, then become a daemon (questions 2 and 5)",
        "fingerd : bind, puis devenir démon (questions 2 et 5)"
    ));
    w.say(tr!(
        w,
        "fingerd binds and listens first, so a port in use is said to the shell (exit 1). Then
         it leaves as lab 6 taught: fork, setsid, fork, chdir /, stdio on /dev/null. The daemon
         locks its pidfile, writes its pid there, and tells its launcher, which exits 0.",
        "fingerd fait bind et listen d'abord, pour qu'un port déjà pris soit dit au shell
         (code 1). Puis il part comme au TP 6 : fork, setsid, fork, chdir /, entrées-sorties
         sur /dev/null. Le démon verrouille son fichier de pid, y écrit son pid et prévient son
         lanceur, qui sort avec 0."
    ));
    let fingerd = w.bin("fingerd");
    let (code, out) = w.shell(&[&fingerd, "--dir", &d, "--port", &p])?;
    let pid = number_after(&out, "fingerd ").unwrap_or(0);
    let pidfile = std::fs::read_to_string(dir.path().join("fingerd.pid")).unwrap_or_default();
    w.expect(
        code == 0 && pid > 0 && pidfile.trim() == pid.to_string(),
        tr!(
            w,
            "the launcher exited 0; the pidfile holds the daemon's pid",
            "le lanceur est sorti avec 0 ; le fichier de pid contient le pid du démon"
        ),
    );
    let _ = w.shell(&[
        "ps",
        "-o",
        "pid,ppid,sid,tty,stat,comm",
        "-p",
        &pid.to_string(),
    ]);
    let info = crate::inspect::info(pid);
    w.expect(
        info.as_ref()
            .is_some_and(|i| i.session != std::process::id() as i32 && i.tty_nr == 0),
        tr!(
            w,
            "a session of its own, no terminal (tty ?)",
            "sa propre session, pas de terminal (tty ?)"
        ),
    );
    w.pause(&tr!(
        w,
        format!("fingerd {pid} listens on {port}: `ss -tlnp sport = :{port}` in another terminal"),
        format!(
            "fingerd {pid} écoute sur {port} : `ss -tlnp sport = :{port}` dans un autre terminal"
        )
    ));

    w.step(tr!(
        w,
        "A query, finger's answer, a log line (questions 3, 4 and 6)",
        "Une requête, la réponse de finger, une ligne de journal (questions 3, 4 et 6)"
    ));
    w.say(tr!(
        w,
        "The client sends the login and CRLF (RFC 1288). The daemon checks it is a login, runs
         /usr/bin/finger -l -m -- LOGIN from an argv (no shell), sends its output and closes.
         It logs the login and the client's address and port.",
        "Le client envoie le login et CRLF (RFC 1288). Le démon vérifie que c'est un login,
         lance /usr/bin/finger -l -m -- LOGIN depuis un argv (pas de shell), envoie sa sortie et
         ferme. Il journalise le login et l'adresse et le port du client."
    ));
    let cli = w.bin("fingercli");
    let (code, answer) = w.shell(&[&cli, "--login", &me, "--host", "127.0.0.1", "--port", &p])?;
    let same = |a: &str, b: &str| {
        let t = |s: &str| s.lines().map(str::trim_end).collect::<Vec<_>>().join("\n");
        t(a).trim_end() == t(b).trim_end()
    };
    w.expect(
        code == 0 && same(&answer, &local),
        tr!(
            w,
            "the answer is the local finger's, line for line",
            "la réponse est celle du finger local, ligne pour ligne"
        ),
    );
    let log = dir.path().join("fingerd.log").display().to_string();
    let (_, text) = w.shell(&["tail", "-n", "1", &log])?;
    w.expect(
        text.contains(&format!("{me:?}")) && text.contains("127.0.0.1:"),
        tr!(
            w,
            "the log line names the login and the client's address",
            "la ligne de journal donne le login et l'adresse du client"
        ),
    );

    w.step(tr!(
        w,
        "Reading to the end (question 7)",
        "Lire jusqu'au bout (question 7)"
    ));
    w.say(tr!(
        w,
        "TCP is a stream: recv returns what has arrived, at most the buffer's size; message
         boundaries do not exist. With a 16-byte buffer the same answer takes many recv calls,
         and only recv = 0 (the daemon's close) says it is whole.",
        "TCP est un flot : recv rend ce qui est arrivé, au plus la taille du tampon ; il n'y a
         pas de frontières de messages. Avec un tampon de 16 octets la même réponse demande de
         nombreux recv, et seul recv = 0 (la fermeture par le démon) dit qu'elle est entière."
    ));
    let (code, out) = w.shell(&[
        &cli,
        "--login",
        &me,
        "--host",
        "127.0.0.1",
        "--port",
        &p,
        "--buffer",
        "16",
        "--count",
    ])?;
    let calls = number_after(&out, "bytes in ").unwrap_or(0);
    w.expect(
        code == 0
            && calls > 2
            && same(
                out.split("\n")
                    .filter(|l| !l.contains(" recv calls"))
                    .collect::<Vec<_>>()
                    .join("\n")
                    .as_str(),
                &local,
            ),
        tr!(
            w,
            "the whole answer again, in several recv calls",
            "toute la réponse encore, en plusieurs recv"
        ),
    );

    w.step(tr!(
        w,
        "The sheet's \"finger \" + query through a shell: any command",
        "Le \"finger \" + requête du sujet par un shell : n'importe quelle commande"
    ));
    w.say(tr!(
        w,
        "The sheet builds \"finger \" + received and runs it with getoutput (Python 3:
         subprocess.getoutput, which runs sh -c). A client that sends `x; id` makes the server
         run id; `x; rm -rf ~` would be worse. Here is what that shell does with such a query,
         run locally:",
        "Le sujet construit \"finger \" + reçu et le lance avec getoutput (Python 3 :
         subprocess.getoutput, qui lance sh -c). Un client qui envoie `x; id` fait exécuter id
         au serveur ; `x; rm -rf ~` serait pire. Voici ce que ce shell fait d'une telle requête,
         lancé ici :"
    ));
    let (_, out) = w.shell(&["sh", "-c", "finger x; id"])?;
    w.expect(
        out.contains("uid="),
        tr!(
            w,
            "the shell ran id after finger",
            "le shell a exécuté id après finger"
        ),
    );
    w.say(tr!(
        w,
        "The reference never gives the query to a shell: it checks a login is letters, digits,
         _ . - and passes it as one argv word. The same query, sent to it:",
        "La référence ne donne jamais la requête à un shell : elle vérifie qu'un login est fait
         de lettres, chiffres, _ . - et le passe comme un seul mot de l'argv. La même requête,
         envoyée à elle :"
    ));
    let (_, out) = w.shell(&[
        &cli,
        "--login",
        "x; id",
        "--host",
        "127.0.0.1",
        "--port",
        &p,
    ])?;
    w.expect(
        out.contains("not a login") && !out.contains("uid="),
        tr!(
            w,
            "refused as not a login; nothing ran",
            "refusée, ce n'est pas un login ; rien n'a été exécuté"
        ),
    );

    w.step(tr!(
        w,
        "A second start, then SIGTERM",
        "Un second démarrage, puis SIGTERM"
    ));
    w.say(tr!(
        w,
        "The pidfile is locked while the daemon lives: a second fingerd sees the lock and
         refuses (exit 2). On SIGTERM the daemon stops accepting, ends its clients, removes its
         pidfile and exits.",
        "Le fichier de pid est verrouillé tant que le démon vit : un second fingerd voit le
         verrou et refuse (code 2). Sur SIGTERM le démon cesse d'accepter, termine ses clients,
         supprime son fichier de pid et sort."
    ));
    let (code, out) = w.shell(&[&fingerd, "--dir", &d, "--port", &p])?;
    w.expect(
        code == 2 && out.contains("already running"),
        tr!(w, "refused: already running", "refusé : déjà en marche"),
    );
    let ended = stop(w, pid)?;
    w.expect(
        ended && !dir.path().join("fingerd.pid").exists(),
        tr!(
            w,
            "the daemon ended and removed its pidfile",
            "le démon a fini et supprimé son fichier de pid"
        ),
    );
    let _ = w.shell(&["tail", "-n", "1", &log])?;
    if let Some(hosts) = w.hosts.clone() {
        remote(w, &hosts, &me)?;
    }
    Ok(())
}

/// With `--hosts FILE`: the daemon on another machine of the file, started over ssh as the
/// sheet's launcher does, asked from here; its log names this machine's address.
fn remote(w: &mut Walk, hosts: &[String], me: &str) -> Result<()> {
    let (here, server) = crate::walkthrough::here_and_there(hosts);
    w.step(&tr!(
        w,
        format!("On another machine: fingerd on {server}, asked from {here}"),
        format!("Sur une autre machine : fingerd sur {server}, interrogé depuis {here}")
    ));
    w.say(tr!(
        w,
        "ssh starts the daemon there, in a private directory of that user's home, on a port the
         kernel picks (--port 0: another student may hold 7979). The programs are at the same
         path there, as on the room's shared home. If you stop this walkthrough (Ctrl-C), it
         stops that daemon there too, over ssh.",
        "ssh y lance le démon, dans un répertoire privé du home de cet utilisateur, sur un port
         que le noyau choisit (--port 0 : un autre étudiant peut tenir 7979). Les programmes sont
         au même chemin là-bas, comme sur le home partagé de la salle. Si vous arrêtez ce
         déroulé (Ctrl-C), il arrête aussi ce démon là-bas, par ssh."
    ));
    let q = crate::walkthrough::sh_quote;
    let fingerd = q(&w.bin("fingerd"));
    let ssh = |cmd: String| crate::walkthrough::ssh_argv(&server, cmd);
    let run = |w: &mut Walk, argv: Vec<String>| {
        let v: Vec<&str> = argv.iter().map(String::as_str).collect();
        w.shell(&v)
    };
    // The directory's name is drawn here, so that what stops the daemon if this walkthrough
    // is stopped (Ctrl-C) is known before it starts: its pidfile there, then the directory.
    let d = format!("\"$HOME/ipclab-fingerd.{:08x}\"", rand::random::<u32>());
    let undo = crate::walkthrough::stop::undo_on_stop(ssh(format!(
        "p=$(cat {d}/fingerd.pid 2>/dev/null) && kill \"$p\" && timeout 5 tail --pid=\"$p\" -f /dev/null; rm -rf {d}"
    )));
    let (code, out) = run(
        w,
        ssh(format!(
            "d={d} && mkdir -m 700 \"$d\" && {fingerd} --dir \"$d\" --port 0"
        )),
    )?;
    let pid = number_after(&out, "fingerd ");
    let port = out
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.trim().parse::<u16>().ok());
    let dir = out
        .split("pidfile ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|p| p.strip_suffix("/fingerd.pid"))
        .map(str::to_string);
    let (Some(pid), Some(port), Some(dir), 0) = (pid, port, dir, code) else {
        w.expect(
            false,
            &tr!(
                w,
                format!("fingerd started on {server} over ssh"),
                format!("fingerd lancé sur {server} par ssh")
            ),
        );
        // Its directory there goes (and a daemon, had one started).
        run(w, undo.argv())?;
        return Ok(());
    };
    let (_, user) = run(w, ssh("id -un".into()))?;
    let user = user.lines().next().unwrap_or(me).trim().to_string();
    let (_, there) = run(w, ssh(format!("finger -l -m -- {}", q(&user))))?;
    let cli = w.bin("fingercli");
    let p = port.to_string();
    let (code, answer) = w.shell(&[&cli, "--login", &user, "--host", &server, "--port", &p])?;
    let norm = |s: &str| s.lines().map(str::trim_end).collect::<Vec<_>>().join("\n");
    w.expect(
        code == 0 && norm(&answer).trim_end() == norm(&there).trim_end(),
        &tr!(
            w,
            format!("the answer is what finger says on {server}"),
            format!("la réponse est ce que dit finger sur {server}")
        ),
    );
    let (_, line) = run(w, ssh(format!("tail -n 1 {}/fingerd.log", q(&dir))))?;
    w.expect(
        line.contains(&format!("{user:?}")) && !line.contains("127.0.0.1"),
        &tr!(
            w,
            format!("{server}'s log names the login and this machine's address"),
            format!("le journal de {server} donne le login et l'adresse de cette machine")
        ),
    );
    let (code, _) = run(
        w,
        ssh(format!(
            "kill {pid} && timeout 5 tail --pid={pid} -f /dev/null; test ! -e {d}/fingerd.pid && rm -r {d}",
            d = q(&dir)
        )),
    )?;
    w.expect(
        code == 0,
        &tr!(
            w,
            format!("SIGTERM over ssh: the daemon on {server} ended, its directory removed"),
            format!("SIGTERM par ssh : le démon sur {server} a fini, son répertoire supprimé")
        ),
    );
    Ok(())
}

/// `kill -TERM PID` as the student types it; then the daemon's end, awaited on its pidfd.
fn stop(w: &mut Walk, pid: i32) -> Result<bool> {
    let fd = crate::process::pidfd_open(nix::unistd::Pid::from_raw(pid)).ok();
    w.shell(&["kill", "-TERM", &pid.to_string()])?;
    let ended = fd.is_some_and(|fd| {
        crate::signals::poll_fds(
            &[std::os::fd::AsFd::as_fd(&fd)],
            Some(std::time::Duration::from_secs(5)),
        )
        .is_ok_and(|r| r[0])
    });
    w.settle();
    Ok(ended)
}
