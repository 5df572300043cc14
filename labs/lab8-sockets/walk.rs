//! Lab 8 walkthrough: a privileged port, a UDP server and its datagrams (source, truncation,
//! nobody listening, port in use), then a TCP server: listen and its backlog, accept's new socket
//! on the same port, OK per line, the client closing first, TIME_WAIT, and the segments on the
//! wire (tcpdump, as root).

use crate::error::Result;
use crate::inet;
use crate::tr;
use crate::walkthrough::{Live, Walk};
use nix::sys::signal::Signal;

pub fn walk(w: &mut Walk) -> Result<()> {
    privileged_port(w)?;
    let port = preferred_port(9875)?;
    let server = udp(w, port)?;
    stop(w, server, "signal: closing the socket")?;
    let port = preferred_port(9876)?;
    tcp(w, port)
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

    wire(w, port)?;
    stop(w, server, "signal: closing the listening socket")
}

/// The segments of one more connection, as tcpdump sees them on the loopback (root only).
fn wire(w: &mut Walk, port: u16) -> Result<()> {
    w.step(tr!(
        w,
        "On the wire: handshake, data and ACKs, FIN and ACK",
        "Sur le fil : poignée de main, données et ACK, FIN et ACK"
    ));
    let root = nix::unistd::geteuid().is_root();
    let tcpdump = std::path::Path::new("/usr/bin/tcpdump").exists()
        || std::path::Path::new("/usr/sbin/tcpdump").exists();
    if !root || !tcpdump {
        w.say(tr!(
            w,
            "Skipped: capturing packets needs tcpdump and CAP_NET_RAW (root, or inside the hosts
             of ipclab hosts). Run make lab8 as root to see this step.",
            "Sautée : capturer les paquets demande tcpdump et CAP_NET_RAW (root, ou dans les
             machines d'ipclab hosts). Lancez make lab8 en root pour voir cette étape."
        ));
        return Ok(());
    }
    w.say(tr!(
        w,
        "tcpdump on the loopback, one more client. [S] is SYN, [S.] SYN-ACK, [.] an ACK alone,
         [P.] data (with an ACK), [F.] FIN: three segments open the connection, each piece of
         data is acknowledged, and each side's FIN is acknowledged by the other.",
        "tcpdump sur la boucle locale, un client de plus. [S] est SYN, [S.] SYN-ACK, [.] un ACK
         seul, [P.] des données (avec un ACK), [F.] FIN : trois segments ouvrent la connexion,
         chaque donnée est acquittée, et le FIN de chaque côté est acquitté par l'autre."
    ));
    let p = port.to_string();
    let mut dump = w.spawn(&[
        "tcpdump",
        "-i",
        "lo",
        "-n",
        "-l",
        "-S",
        "--immediate-mode",
        "tcp",
        "port",
        &p,
    ])?;
    // tcpdump says so once its capture is open: only then does the client start.
    dump.wait_for("listening on")?;
    let (code, _) = w.shell(&[&w.bin("tcp-client"), "--port", &p, "--message", "hello"])?;
    let mut flags: Vec<String> = Vec::new();
    // Until the ACK of the second FIN: the connection's last segment.
    let fins = |f: &[String]| f.iter().filter(|x| x.contains('F')).count();
    while !(fins(&flags) >= 2 && flags.last().is_some_and(|f| f == ".")) {
        let Some(line) = dump.next_line()? else {
            break;
        };
        if let Some(f) = line
            .split("Flags [")
            .nth(1)
            .and_then(|r| r.split(']').next())
        {
            flags.push(f.to_string());
        }
    }
    crate::process::signal(nix::unistd::Pid::from_raw(dump.pid()), Signal::SIGINT)?;
    dump.finish()?;
    let handshake = flags.len() >= 3 && flags[0] == "S" && flags[1] == "S." && flags[2] == ".";
    w.expect(
        code == 0 && handshake,
        tr!(w, "SYN, SYN-ACK, ACK first", "SYN, SYN-ACK, ACK d'abord"),
    );
    w.expect(
        fins(&flags) == 2,
        &tr!(
            w,
            format!("a FIN each way: {}", flags.join(" ")),
            format!("un FIN dans chaque sens : {}", flags.join(" "))
        ),
    );
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
