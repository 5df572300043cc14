//! Lab 8 walkthrough: a privileged port, a UDP server and its datagrams (source, truncation,
//! nobody listening, port in use), then a TCP server: listen and its backlog, accept's new socket
//! on the same port, OK per line, the client closing first, TIME_WAIT, and the segments on the
//! wire between two hosts made of namespaces, drawn as a sequence chart.

use crate::error::Result;
use crate::inet;
use crate::tr;
use crate::walkthrough::{number_after, Live, Walk};
use nix::sys::signal::Signal;

pub fn walk(w: &mut Walk) -> Result<()> {
    privileged_port(w)?;
    let port = preferred_port(9875)?;
    let server = udp(w, port)?;
    stop(w, server, "signal: closing the socket")?;
    let port = preferred_port(9876)?;
    tcp(w, port)?;
    if let Some(hosts) = w.hosts.clone() {
        remote(w, &hosts)?;
    }
    Ok(())
}

/// With `--hosts FILE`: each server on another machine of the file, started over ssh as the
/// sheet's launcher does, its client here; the server sees this machine's address.
fn remote(w: &mut Walk, hosts: &[String]) -> Result<()> {
    let (here, there) = crate::walkthrough::here_and_there(hosts);
    w.step(&tr!(
        w,
        format!("On another machine: the servers on {there}, their clients on {here}"),
        format!("Sur une autre machine : les serveurs sur {there}, leurs clients sur {here}")
    ));
    w.say(tr!(
        w,
        "ssh starts each server there on a port the kernel picks (--port 0: another student may
         hold 9875) and prints its pid; the programs are at the same path there, as on the
         room's shared home. The shell there reads ssh's input: if you stop this walkthrough
         (Ctrl-C), the session ends and that shell kills its server.",
        "ssh y lance chaque serveur sur un port que le noyau choisit (--port 0 : un autre
         étudiant peut tenir 9875) et affiche son pid ; les programmes sont au même chemin
         là-bas, comme sur le home partagé de la salle. Le shell là-bas lit l'entrée de ssh : si
         vous arrêtez ce déroulé (Ctrl-C), la session finit et ce shell tue son serveur."
    ));
    let q = crate::walkthrough::sh_quote;
    let ssh = |cmd: String| crate::walkthrough::ssh_argv(&there, cmd);
    for (server, client, extra) in [
        ("udp-server", "udp-client", &["--message", "hello"][..]),
        ("tcp-server", "tcp-client", &["--message", "hello"][..]),
    ] {
        // The shell there says the server's pid, then reads ssh's input: its end (the session
        // over, this walkthrough stopped however) kills the server; then it waits for it. The
        // server's lines come back here.
        let argv = ssh(format!(
            "{} --port 0 & echo \"pid $!\"; read _; kill $! 2>/dev/null; wait",
            q(&w.bin(server))
        ));
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let mut live = w.spawn(&argv)?;
        // The pid and the listening line, in whichever order they come.
        let (mut pid, mut port) = (None, None);
        while pid.is_none() || port.is_none() {
            let Ok(Some(line)) = live.next_line() else {
                break;
            };
            if line.starts_with("pid ") {
                pid = number_after(&line, "pid ");
            } else if let Some(rest) = line.strip_prefix("listening on ") {
                port = rest
                    .split(' ')
                    .next()
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| p.parse::<u16>().ok());
            }
        }
        let (Some(pid), Some(port)) = (pid, port) else {
            w.expect(
                false,
                &tr!(
                    w,
                    format!("{server} started on {there} over ssh"),
                    format!("{server} lancé sur {there} par ssh")
                ),
            );
            drop(live.finish());
            return Ok(());
        };
        let p = port.to_string();
        let cli = w.bin(client);
        let args = [
            &[cli.as_str(), "--host", there.as_str(), "--port", &p][..],
            extra,
        ]
        .concat();
        let (code, out) = w.shell(&args)?;
        // The client's own address, as it says it ("connected from A" / the server's "from A").
        let mine = out
            .lines()
            .find_map(|l| l.strip_prefix("connected from "))
            .and_then(|r| r.split(' ').next())
            .map(str::to_string);
        let seen = if server == "udp-server" {
            live.wait_for("from ")?
        } else {
            live.wait_for("accepted ")?
        };
        let from = seen
            .split_whitespace()
            .nth(1)
            .map(|a| a.trim_end_matches(':').to_string())
            .unwrap_or_default();
        let ok = code == 0 && !from.starts_with("127.") && mine.as_ref().is_none_or(|m| *m == from);
        let from = from
            .rsplit_once(':')
            .map_or(from.clone(), |(ip, _)| ip.to_string());
        w.expect(
            ok,
            &tr!(
                w,
                format!("{server} on {there} answered, and saw {here}'s address ({from})"),
                format!("{server} sur {there} a répondu, et a vu l'adresse de {here} ({from})")
            ),
        );
        let (code, _) = {
            let kill = ssh(format!("kill {pid}"));
            let kill: Vec<&str> = kill.iter().map(String::as_str).collect();
            w.shell(&kill)?
        };
        let (status, said) = live.finish()?;
        w.expect(
            code == 0 && status == 0 && said.contains("signal: closing"),
            &tr!(
                w,
                format!("SIGTERM over ssh: {server} closed its socket and exited 0"),
                format!("SIGTERM par ssh : {server} a fermé sa socket et fini avec 0")
            ),
        );
    }
    Ok(())
}

/// The sheet's port if no socket uses it here (a TIME-WAIT left by an interrupted run holds it
/// too), else one the kernel picks.
fn preferred_port(want: u16) -> Result<u16> {
    let used = ["udp", "tcp"]
        .iter()
        .any(|t| inet::sockets(t).iter().any(|s| s.local.port() == want));
    if !used {
        return Ok(want);
    }
    inet::free_port()
}

fn privileged_port(w: &mut Walk) -> Result<()> {
    let start = inet::unprivileged_port_start();
    w.step(tr!(
        w,
        "Port 23 as a normal user: refused",
        "Le port 23 en utilisateur ordinaire : refusé"
    ));
    w.say(&tr!(
        w,
        format!(
            "Ports below {start} (net.ipv4.ip_unprivileged_port_start) are for services the system
             runs: bind needs CAP_NET_BIND_SERVICE, which root has and a student does not. The
             rule is each host's own kernel: on another machine of the room it is the same."
        ),
        format!(
            "Les ports sous {start} (net.ipv4.ip_unprivileged_port_start) sont réservés aux
             services du système : bind demande CAP_NET_BIND_SERVICE, que root a et qu'un
             étudiant n'a pas. La règle est celle du noyau de chaque machine : sur une autre
             machine de la salle, c'est la même."
        )
    ));
    let server = w.bin("udp-server");
    // As a student runs it: root would be allowed, so root shows it as nobody (uid 65534).
    let mut argv: Vec<&str> = Vec::new();
    if nix::unistd::geteuid().is_root() {
        argv.extend([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]);
    }
    argv.extend([server.as_str(), "--port", "23"]);
    let (code, out) = w.shell(&argv)?;
    w.expect(
        code == 1 && out.contains("EACCES"),
        tr!(
            w,
            "bind failed with EACCES, one line, exit status 1",
            "bind a échoué avec EACCES, une ligne, code de sortie 1"
        ),
    );
    Ok(())
}

fn udp(w: &mut Walk, port: u16) -> Result<Live> {
    let p = port.to_string();
    w.step(&tr!(
        w,
        format!("A UDP server on port {port}"),
        format!("Un serveur UDP sur le port {port}")
    ));
    w.say(tr!(
        w,
        "socket(AF_INET, SOCK_DGRAM) then bind to 0.0.0.0 (every address of this host). The
         server then waits in recvfrom: it does not return to the shell. ss lists the socket:
         UNCONN, since a datagram socket has no connection. Its buffer is 16 bytes here, to show
         what becomes of a longer datagram.",
        "socket(AF_INET, SOCK_DGRAM) puis bind sur 0.0.0.0 (toutes les adresses de la machine).
         Le serveur attend ensuite dans recvfrom : il ne rend pas la main. ss montre la socket :
         UNCONN, une socket de datagrammes n'a pas de connexion. Son tampon fait ici 16 octets,
         pour montrer ce que devient un datagramme plus long."
    ));
    let mut server = w.spawn(&[&w.bin("udp-server"), "--port", &p, "--buffer", "16"])?;
    server.wait_for("listening on")?;
    let (_, out) = w.shell(&["ss", "-uan", "sport", "=", &format!(":{port}")])?;
    w.expect(
        inet::udp_bound(port) && out.contains(&format!(":{port}")),
        tr!(
            w,
            "the kernel's socket table shows the port bound",
            "la table des sockets du noyau montre le port associé"
        ),
    );
    w.pause(&tr!(
        w,
        format!("the server waits in recvfrom: `ss -uanp` in another terminal shows it on {port}"),
        format!("le serveur attend dans recvfrom : `ss -uanp` dans un autre terminal le montre sur {port}")
    ));

    w.step(tr!(
        w,
        "A datagram, and where it came from",
        "Un datagramme, et d'où il vient"
    ));
    w.say(tr!(
        w,
        "The client sends with sendto, no connection first. recvfrom returns the data and the
         sender's address: its IP and the port its kernel chose for it. The server answers OK to
         that address.",
        "Le client envoie avec sendto, sans connexion préalable. recvfrom rend les données et
         l'adresse de l'émetteur : son IP et le port que son noyau lui a choisi. Le serveur
         répond OK à cette adresse."
    ));
    let client = w.bin("udp-client");
    let (code, out) = w.shell(&[&client, "--port", &p, "--message", "hello"])?;
    let line = server.wait_for("from ")?;
    w.expect(
        code == 0
            && out.contains("\"OK\"")
            && line.contains("127.0.0.1:")
            && line.contains("hello"),
        tr!(
            w,
            "the server saw the source address and port; the client got OK",
            "le serveur a vu l'adresse et le port source ; le client a reçu OK"
        ),
    );

    w.step(tr!(
        w,
        "Larger than the buffer: cut, the rest lost",
        "Plus grand que le tampon : coupé, le reste perdu"
    ));
    w.say(tr!(
        w,
        "UDP keeps message boundaries: one recvfrom takes one whole datagram. What does not fit
         in the buffer is discarded, not kept for the next call. With MSG_TRUNC, recvfrom returns
         the datagram's real length, so the server can tell (make strace-lab8 shows
         recvfrom(..., 16, MSG_TRUNC, ...) = 33).",
        "UDP garde les frontières des messages : un recvfrom prend un datagramme entier. Ce qui
         ne tient pas dans le tampon est jeté, pas gardé pour l'appel suivant. Avec MSG_TRUNC,
         recvfrom rend la vraie longueur du datagramme, le serveur le voit donc (make
         strace-lab8 montre recvfrom(..., 16, MSG_TRUNC, ...) = 33)."
    ));
    let long = super::LONG;
    let (code, _) = w.shell(&[&client, "--port", &p, "--message", long])?;
    let line = server.wait_for("from ")?;
    w.expect(
        code == 0 && line.contains(&format!("{} bytes, 16 kept", long.len())),
        &tr!(
            w,
            format!(
                "{} bytes sent, 16 received, {} lost",
                long.len(),
                long.len() - 16
            ),
            format!(
                "{} octets envoyés, 16 reçus, {} perdus",
                long.len(),
                long.len() - 16
            )
        ),
    );

    let closed = inet::free_port()?.to_string();
    w.step(tr!(
        w,
        "A port nobody holds",
        "Un port que personne ne tient"
    ));
    w.say(tr!(
        w,
        "sendto succeeds: UDP sends and forgets. The other host answers with an ICMP \"port
         unreachable\", which an unconnected socket never hears: the client only sees that no
         answer comes. A connected UDP socket (connect, then send) is told: ECONNREFUSED.",
        "sendto réussit : UDP envoie et oublie. L'autre machine répond par un ICMP « port
         unreachable », qu'une socket non connectée n'entend jamais : le client voit seulement
         que rien ne revient. Une socket UDP connectée (connect, puis send) en est avertie :
         ECONNREFUSED."
    ));
    let (code, out) = w.shell(&[&client, "--port", &closed, "--wait-ms", "300"])?;
    w.expect(
        code == 1 && out.contains("no answer"),
        tr!(
            w,
            "unconnected: sent, and nothing came back",
            "non connectée : envoyé, et rien n'est revenu"
        ),
    );
    let (code, out) = w.shell(&[&client, "--port", &closed, "--connect"])?;
    w.expect(
        code == 1 && out.contains("ECONNREFUSED"),
        tr!(
            w,
            "connected: ECONNREFUSED, from the ICMP port unreachable",
            "connectée : ECONNREFUSED, venu de l'ICMP port unreachable"
        ),
    );

    w.step(tr!(w, "A port already in use", "Un port déjà utilisé"));
    w.say(tr!(
        w,
        "A second server on the same port: bind fails with EADDRINUSE. A program handles the
         error: one line saying what failed and why, the socket closed, exit status 1.",
        "Un second serveur sur le même port : bind échoue avec EADDRINUSE. Un programme gère
         l'erreur : une ligne qui dit ce qui a échoué et pourquoi, la socket fermée, code de
         sortie 1."
    ));
    let (code, out) = w.shell(&[&w.bin("udp-server"), "--port", &p])?;
    w.expect(
        code == 1 && out.contains("EADDRINUSE"),
        tr!(
            w,
            "EADDRINUSE, one line, exit status 1",
            "EADDRINUSE, une ligne, code de sortie 1"
        ),
    );
    Ok(server)
}

fn tcp(w: &mut Walk, port: u16) -> Result<()> {
    let p = port.to_string();
    w.step(&tr!(
        w,
        format!("A TCP server: listen on port {port}"),
        format!("Un serveur TCP : listen sur le port {port}")
    ));
    w.say(tr!(
        w,
        "socket(AF_INET, SOCK_STREAM), bind, then listen(5). The backlog bounds the connections
         the kernel has completed (the three-way handshake done) and that accept has not taken
         yet; half-open ones (SYN received) wait in a queue of their own. For a listening socket
         ss shows the backlog in its Send-Q column.",
        "socket(AF_INET, SOCK_STREAM), bind, puis listen(5). Le backlog borne les connexions que
         le noyau a établies (poignée de main finie) et qu'accept n'a pas encore prises ; les
         semi-ouvertes (SYN reçu) attendent dans une file à part. Pour une socket en écoute, ss
         montre le backlog dans sa colonne Send-Q."
    ));
    let mut server = w.spawn(&[&w.bin("tcp-server"), "--port", &p, "--backlog", "5"])?;
    server.wait_for("listening on")?;
    let (_, out) = w.shell(&["ss", "-tln", "sport", "=", &format!(":{port}")])?;
    w.expect(
        inet::tcp_listening(port) && out.contains("LISTEN"),
        tr!(
            w,
            "LISTEN, Send-Q 5: the backlog",
            "LISTEN, Send-Q 5 : le backlog"
        ),
    );

    w.step(tr!(
        w,
        "accept: a new socket, on the same port",
        "accept : une nouvelle socket, sur le même port"
    ));
    w.say(tr!(
        w,
        "connect makes the handshake (SYN, SYN-ACK, ACK); accept then returns a new socket for
         this client. Its local port is the listening port: a connection is known by its four
         numbers (both addresses, both ports), so the listening socket stays free for the next
         client without any other port. (The sheet says another port is used: ss shows it is
         not.) The client holds the connection open here.",
        "connect fait la poignée de main (SYN, SYN-ACK, ACK) ; accept rend alors une nouvelle
         socket pour ce client. Son port local est le port d'écoute : une connexion se
         reconnaît à ses quatre nombres (les deux adresses, les deux ports), la socket d'écoute
         reste donc libre pour le client suivant sans autre port. (La feuille dit qu'un autre
         port est pris : ss montre que non.) Le client garde ici la connexion ouverte."
    ));
    let mut client = w.spawn(&[
        &w.bin("tcp-client"),
        "--port",
        &p,
        "--message",
        "hello",
        "--hold",
    ])?;
    client.wait_for("holding the connection")?;
    let accepted = server.wait_for("accepted ")?;
    let filter = format!("( sport = :{port} or dport = :{port} )");
    let (_, out) = w.shell(&["ss", "-tan", &filter])?;
    let estab = out.matches("ESTAB").count();
    w.expect(
        accepted.contains(&format!("local 127.0.0.1:{port}")) && estab == 2,
        tr!(
            w,
            "two ESTAB sockets (one each side), the server's on the listening port, LISTEN still there",
            "deux sockets ESTAB (une de chaque côté), celle du serveur sur le port d'écoute, LISTEN toujours là"
        ),
    );
    w.pause(&tr!(
        w,
        format!("the connection is established: `ss -tan` in another terminal shows both ends on {port}"),
        format!("la connexion est établie : `ss -tan` dans un autre terminal en montre les deux bouts sur {port}")
    ));

    w.step(tr!(
        w,
        "A line, OK, and the client closes first",
        "Une ligne, OK, et le client ferme le premier"
    ));
    w.say(tr!(
        w,
        "TCP carries a stream, not messages: a recv may return part of a line or several lines.
         The server answers OK for each whole line. The client closes first: its FIN reaches the
         server, whose recv returns 0, and the server closes its side. The side that closed first
         then waits in TIME_WAIT (60 s on Linux), so that a late segment of this connection is
         never taken for part of the next one.",
        "TCP transporte un flot, pas des messages : un recv peut rendre un morceau de ligne ou
         plusieurs lignes. Le serveur répond OK pour chaque ligne entière. Le client ferme le
         premier : son FIN arrive au serveur, dont le recv rend 0, et le serveur ferme son côté.
         Le côté qui a fermé le premier attend ensuite en TIME_WAIT (60 s sous Linux), pour
         qu'un segment en retard de cette connexion ne soit jamais pris pour un morceau de la
         suivante."
    ));
    let (code, out) = client.finish()?;
    let closed = server.wait_for("closed its side")?;
    w.expect(
        code == 0 && out.contains("\"OK\"") && closed.contains("recv returned 0"),
        tr!(
            w,
            "OK received; the server saw recv return 0 and closed",
            "OK reçu ; le serveur a vu recv rendre 0 et a fermé"
        ),
    );
    let (_, out) = w.shell(&["ss", "-tan", "state", "time-wait", &filter])?;
    let waiting = inet::sockets("tcp")
        .iter()
        .any(|s| s.state == "TIME-WAIT" && s.remote.port() == port);
    w.expect(
        waiting && out.contains(&format!(":{port}")),
        tr!(
            w,
            "TIME-WAIT on the client's side (the one that closed first)",
            "TIME-WAIT côté client (celui qui a fermé le premier)"
        ),
    );

    stop(w, server, "signal: closing the listening socket")?;
    wire(w)
}

/// The segments of one connection between two hosts — two network namespaces joined by a
/// virtual cable, in a user namespace of the student's own, so no root is needed — captured on
/// the server's host and drawn as a sequence chart.
fn wire(w: &mut Walk) -> Result<()> {
    w.step(tr!(
        w,
        "On the wire between two hosts: handshake, data and ACKs, FIN and ACK",
        "Sur le fil entre deux machines : poignée de main, données et ACK, FIN et ACK"
    ));
    w.say(tr!(
        w,
        "Two hosts made by hand, as ipclab hosts up does: h1 and h2 are network namespaces (each
         its own interfaces, addresses and ports), inside a user namespace where you are root, so
         no sudo is needed; a veth pair is the cable between them. Each namespace lives as long as
         a process in it (a cat, holding it): nothing is left when they end.",
        "Deux machines faites à la main, comme le fait ipclab hosts up : h1 et h2 sont des espaces
         de noms réseau (chacun ses interfaces, ses adresses et ses ports), dans un espace de noms
         utilisateur où vous êtes root, donc sans sudo ; une paire veth est le câble entre elles.
         Chaque espace vit tant qu'un processus y vit (cat, qui le tient) : rien ne reste après."
    ));
    // Each prints its interfaces (only lo, down: a new namespace is empty) once inside, then
    // holds it: that line says the namespace exists before anything enters it.
    let hold = "ip -brief link; exec cat";
    let mut h1 = w.spawn(&[
        "unshare",
        "--user",
        "--map-root-user",
        "--net",
        "--",
        "sh",
        "-c",
        hold,
    ])?;
    if h1.wait_for("LOOPBACK").is_err() {
        h1.finish()?;
        w.say(tr!(
            w,
            "Skipped: unshare cannot make a user namespace here (see ipclab doctor).",
            "Sautée : unshare ne peut pas créer d'espace de noms utilisateur ici (voir ipclab doctor)."
        ));
        return Ok(());
    }
    let p1 = h1.pid().to_string();
    // nsenter -U: into h1's user namespace, where we are root (our uid is its 0: nothing to
    // change, hence --preserve-credentials); -n: into a host's network.
    let mut h2 = w.spawn(&[
        "nsenter",
        "-t",
        &p1,
        "-U",
        "--preserve-credentials",
        "--",
        "unshare",
        "--net",
        "--",
        "sh",
        "-c",
        hold,
    ])?;
    let p2 = h2.pid().to_string();
    let made = h2.wait_for("LOOPBACK").is_ok();
    w.expect(
        made,
        tr!(
            w,
            "h2 made in h1's user namespace",
            "h2 faite dans l'espace de noms utilisateur de h1"
        ),
    );
    if !made {
        return end_hosts(h1, h2);
    }
    let on = |pid: &str, argv: &[&str]| -> Vec<String> {
        [
            "nsenter",
            "-t",
            pid,
            "-U",
            "--preserve-credentials",
            "-n",
            "--",
        ]
        .iter()
        .chain(argv)
        .map(|s| s.to_string())
        .collect()
    };
    let run = |w: &mut Walk, argv: Vec<String>| -> Result<i32> {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        Ok(w.shell(&argv)?.0)
    };
    let mut ok = run(
        w,
        on(
            &p1,
            &[
                "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &p2,
            ],
        ),
    )? == 0;
    for (pid, addr) in [(&p1, "10.255.0.1/24"), (&p2, "10.255.0.2/24")] {
        ok &= run(w, on(pid, &["ip", "address", "add", addr, "dev", "eth0"]))? == 0;
        ok &= run(w, on(pid, &["ip", "link", "set", "eth0", "up"]))? == 0;
    }
    w.expect(
        ok,
        tr!(
            w,
            "h1 is 10.255.0.1, h2 is 10.255.0.2",
            "h1 est 10.255.0.1, h2 est 10.255.0.2"
        ),
    );
    if !ok {
        return end_hosts(h1, h2);
    }
    // Ports are per namespace: the sheet's 9875 is free on h1 whatever this machine runs.
    let server_argv = on(&p1, &[&w.bin("tcp-server"), "--port", "9875"]);
    let argv: Vec<&str> = server_argv.iter().map(String::as_str).collect();
    let mut server = w.spawn(&argv)?;
    server.wait_for("listening on")?;
    let ipclab = w.bin("ipclab");
    let cap_argv = on(
        &p1,
        &[&ipclab, "capture", "--port", "9875", "--until-closed"],
    );
    let argv: Vec<&str> = cap_argv.iter().map(String::as_str).collect();
    let mut cap = w.spawn(&argv)?;
    cap.echo = false;
    // The capture says so once its packet socket is open: only then does the client start.
    cap.wait_for("listening on every interface")?;
    let client = on(
        &p2,
        &[
            &w.bin("tcp-client"),
            "--host",
            "10.255.0.1",
            "--port",
            "9875",
            "--message",
            "hello",
        ],
    );
    let code = run(w, client)?;
    server.wait_for("closing mine")?;
    let (_, captured) = cap.finish()?;
    let segments: Vec<crate::wire::Segment> =
        captured.lines().filter_map(|l| l.parse().ok()).collect();
    let segments = crate::wire::relative(&segments);
    let client_addr = segments.first().map(|s| s.src);
    let mut names = vec![(
        "10.255.0.1:9875".parse().expect("an address"),
        "h1 tcp-server".to_string(),
    )];
    if let Some(a) = client_addr {
        names.push((a, "h2 tcp-client".to_string()));
    }
    w.say(tr!(
        w,
        "ipclab capture on h1 (a packet socket, as tcpdump uses), numbers relative to each side's
         SYN as tcpdump prints them: three segments open the connection, each piece of data is
         acknowledged, and each side's FIN is acknowledged by the other.",
        "ipclab capture sur h1 (une socket paquet, comme tcpdump), numéros relatifs au SYN de
         chaque côté comme tcpdump les affiche : trois segments ouvrent la connexion, chaque
         donnée est acquittée, et le FIN de chaque côté est acquitté par l'autre."
    ));
    for line in crate::trace::wire::text(&segments, &names).lines() {
        println!("   {line}");
    }
    let flags: Vec<String> = segments.iter().map(|s| s.flags()).collect();
    let handshake = flags.len() >= 3 && flags[0] == "S" && flags[1] == "S." && flags[2] == ".";
    w.expect(
        code == 0 && handshake,
        tr!(w, "SYN, SYN-ACK, ACK first", "SYN, SYN-ACK, ACK d'abord"),
    );
    let fin_from =
        |a: Option<std::net::SocketAddrV4>| segments.iter().any(|s| s.fin && Some(s.src) == a);
    let first_fin = segments.iter().find(|s| s.fin).map(|s| s.src);
    w.expect(
        fin_from(client_addr) && fin_from(Some(names[0].0)) && first_fin == client_addr,
        tr!(
            w,
            "a FIN each way, h2's (the client's) first",
            "un FIN dans chaque sens, celui de h2 (le client) d'abord"
        ),
    );
    let time_wait = |w: &mut Walk, pid: &str| -> Result<bool> {
        let argv = on(pid, &["ss", "-tan", "state", "time-wait"]);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        Ok(w.shell(&argv)?.1.contains(":9875"))
    };
    let (tw2, tw1) = (time_wait(w, &p2)?, time_wait(w, &p1)?);
    w.expect(
        tw2 && !tw1,
        tr!(
            w,
            "TIME-WAIT on h2, which closed first, not on h1",
            "TIME-WAIT sur h2, qui a fermé le premier, pas sur h1"
        ),
    );
    let title = tr!(
        w,
        "lab 8: one TCP connection between h2 and h1, captured on h1",
        "lab 8 : une connexion TCP entre h2 et h1, capturée sur h1"
    );
    let chart = crate::trace::wire::svg(&segments, &names, title);
    // Where nothing can be written, the text above is the evidence: said, not failed.
    match w.chart_path("lab8-wire.svg") {
        Ok(svg) => {
            let wrote = std::fs::write(&svg, chart).is_ok();
            w.expect(
                wrote,
                &tr!(
                    w,
                    format!("the sequence chart is in {}", svg.display()),
                    format!("le diagramme de séquence est dans {}", svg.display())
                ),
            );
        }
        Err(e) => w.say(&e.to_string()),
    }
    crate::process::signal(nix::unistd::Pid::from_raw(server.pid()), Signal::SIGTERM)?;
    server.finish()?;
    end_hosts(h1, h2)
}

/// Ends the two hosts: their last processes exit, the namespaces and the cable go with them.
fn end_hosts(h1: Live, h2: Live) -> Result<()> {
    h2.finish()?;
    h1.finish()?;
    Ok(())
}

/// SIGTERM to a server: it closes its socket and exits 0.
fn stop(w: &mut Walk, server: Live, said: &str) -> Result<()> {
    crate::process::signal(nix::unistd::Pid::from_raw(server.pid()), Signal::SIGTERM)?;
    let (code, out) = server.finish()?;
    w.expect(
        code == 0 && out.contains(said),
        tr!(
            w,
            "SIGTERM: the server closed its socket and exited 0",
            "SIGTERM : le serveur a fermé sa socket et fini avec 0"
        ),
    );
    Ok(())
}
