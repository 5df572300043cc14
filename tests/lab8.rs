//! Lab 8: the UDP and TCP reference programs, judged by what their peers receive and what the
//! kernel's socket table shows.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdout, Command, Stdio};

/// A server started with its stdout read line by line, stopped by SIGTERM.
struct Server {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Server {
    fn start(prog: &str, args: &[&str]) -> Server {
        let mut child = Command::new(bin(prog))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut s = Server { child, out };
        let first = s.line();
        assert!(first.starts_with("listening on"), "{prog}: {first:?}");
        s
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.out.read_line(&mut l).unwrap();
        l
    }

    /// SIGTERM: the server says so and exits 0.
    fn stop(mut self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let mut rest = String::new();
        self.out.read_to_string(&mut rest).unwrap();
        let st = self.child.wait().unwrap();
        assert!(st.success(), "{st}: {rest}");
        assert!(rest.contains("signal: closing"), "{rest}");
    }
}

fn port() -> u16 {
    ipclab::inet::free_port().unwrap()
}

/// Datagrams: each answered OK, the source printed, a long one cut with its length known; a
/// closed port gives silence (or ECONNREFUSED when connected); a taken port, one line and 1.
#[test]
fn lab8_udp_answers_cuts_and_reports() {
    let _forks = fork_guard();
    let p = port();
    let ps = p.to_string();
    let mut server = Server::start("udp-server", &["--port", &ps, "--buffer", "16"]);
    assert!(ipclab::inet::udp_bound(p));
    let out = run(Command::new(bin("udp-client")).args(["--port", &ps, "--message", "hello"]));
    assert!(out.status.success() && text(&out.stdout).contains("\"OK\""));
    let line = server.line();
    assert!(
        line.starts_with("from 127.0.0.1:") && line.contains("5 bytes \"hello\""),
        "{line}"
    );
    let long = "x".repeat(40);
    let out = run(Command::new(bin("udp-client")).args(["--port", &ps, "--message", &long]));
    assert!(out.status.success());
    let line = server.line();
    assert!(
        line.contains("40 bytes, 16 kept") && line.contains("24 lost"),
        "{line}"
    );

    let closed = port().to_string();
    let out = run(Command::new(bin("udp-client")).args(["--port", &closed, "--wait-ms", "200"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("no answer within 200 ms"));
    let out = run(Command::new(bin("udp-client")).args(["--port", &closed, "--connect"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("ECONNREFUSED"),
        "{}",
        text(&out.stderr)
    );

    let out = run(Command::new(bin("udp-server")).args(["--port", &ps]));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("EADDRINUSE") && err.lines().count() == 1,
        "{err}"
    );
    server.stop();
    assert!(!ipclab::inet::udp_bound(p), "the port is still bound");
}

/// A port below the unprivileged start, as a normal user: EACCES, one line, exit 1.
#[test]
fn lab8_privileged_port_is_refused_to_a_normal_user() {
    let _forks = fork_guard();
    let prog = bin("udp-server");
    let mut cmd = if nix::unistd::geteuid().is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&prog);
        c
    } else {
        Command::new(&prog)
    };
    let out = run(cmd.args(["--port", "23"]));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("EACCES") && err.contains("CAP_NET_BIND_SERVICE"),
        "{err}"
    );
}

/// TCP: one OK per line even when lines arrive split or merged, the client's close seen as
/// recv = 0, TIME-WAIT on the client's side, and a client that vanishes mid-line (RST) does not
/// stop the server from serving the next.
#[test]
fn lab8_tcp_answers_lines_and_survives_a_vanished_client() {
    let _forks = fork_guard();
    let p = port();
    let ps = p.to_string();
    let mut server = Server::start("tcp-server", &["--port", &ps]);
    let out = run(Command::new(bin("tcp-client")).args([
        "--port",
        &ps,
        "--message",
        "m",
        "--count",
        "3",
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).matches("server says \"OK\"").count(), 3);
    let mut seen = String::new();
    while !seen.contains("recv returned 0") {
        seen.push_str(&server.line());
    }
    assert!(seen.contains("accepted 127.0.0.1:") && seen.contains(&format!("local 127.0.0.1:{p}")));
    assert!(
        ipclab::inet::sockets("tcp")
            .iter()
            .any(|s| s.state == "TIME-WAIT" && s.remote.port() == p),
        "no TIME-WAIT on the client's side"
    );

    // Two lines in one write, then a line in two writes: three OKs.
    let mut c = std::net::TcpStream::connect(("127.0.0.1", p)).unwrap();
    c.write_all(b"a\nb\nc").unwrap();
    c.flush().unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut got = String::new();
    for _ in 0..2 {
        r.read_line(&mut got).unwrap();
    }
    c.write_all(b"d\n").unwrap();
    r.read_line(&mut got).unwrap();
    assert_eq!(got, "OK\nOK\nOK\n");
    // Vanish: SO_LINGER 0 makes close send a reset, as a killed client's host may.
    let fd = std::os::fd::AsFd::as_fd(&c);
    nix::sys::socket::setsockopt(
        &fd,
        nix::sys::socket::sockopt::Linger,
        &libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    )
    .unwrap();
    c.write_all(b"half a li").unwrap();
    drop(r);
    drop(c);
    let out = run(Command::new(bin("tcp-client")).args(["--port", &ps, "--message", "next"]));
    assert!(
        out.status.success(),
        "the server stopped serving: {}",
        text(&out.stderr)
    );
    server.stop();
    assert!(!ipclab::inet::tcp_listening(p));
}

/// Bad arguments: one line, exit 2, for every program.
#[test]
fn lab8_bad_arguments_are_exit_2() {
    let _forks = fork_guard();
    for (prog, args) in [
        ("udp-server", &["--port", "70000"][..]),
        ("udp-server", &["--port", "9", "--buffer", "0"]),
        (
            "udp-client",
            &["--port", "9", "--host", "no.such.host.invalid"],
        ),
        ("tcp-server", &[]),
        ("tcp-client", &["--port", "x"]),
    ] {
        let out = run(Command::new(bin(prog)).args(args));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{prog} {args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stderr).lines().count(), 1, "{prog} {args:?}");
    }
}

/// The walkthrough's wire step as a normal user: two hosts made of namespaces in a user
/// namespace of the student's own, one connection captured on h1 and drawn — no root needed.
#[test]
fn lab8_walkthrough_draws_the_wire_as_a_normal_user() {
    let _forks = fork_guard();
    let bins = world_readable_bins(&[
        "ipclab",
        "udp-server",
        "udp-client",
        "tcp-server",
        "tcp-client",
    ]);
    let Some(mut cmd) = as_nobody(&bins.path().join("ipclab")) else {
        return;
    };
    let home = nobody_dir();
    let nobodys = || -> Vec<i32> {
        ipclab::inspect::all()
            .into_iter()
            .filter(|p| {
                std::fs::metadata(format!("/proc/{}", p.pid))
                    .is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == NOBODY)
            })
            .map(|p| p.pid)
            .collect()
    };
    let before = nobodys();
    let out = run(cmd
        .args(["lab", "8", "--lang", "en"])
        .current_dir(home.path())
        .env("HOME", home.path()));
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}\n{}", text(&out.stderr));
    for want in [
        "h1 is 10.255.0.1, h2 is 10.255.0.2",
        "✓ SYN, SYN-ACK, ACK first",
        "✓ a FIN each way, h2's (the client's) first",
        "✓ TIME-WAIT on h2, which closed first, not on h1",
        "h2 tcp-client 10.255.0.2:",
    ] {
        assert!(said.contains(want), "{want:?} missing:\n{said}");
    }
    let svg = std::fs::read_to_string(home.path().join("target/lab8-wire.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let flags: Vec<&str> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("segment"))
        .map(|n| n.attribute("data-flags").unwrap())
        .collect();
    assert_eq!(flags[..3], ["S", "S.", "."], "{flags:?}");
    assert_eq!(
        flags.iter().filter(|f| f.contains('F')).count(),
        2,
        "{flags:?}"
    );
    // The hosts went with their processes: no process of nobody's new since the run and in
    // a user namespace other than ours (the hosts'), or running one of our binaries, is left.
    let ours = std::fs::read_link("/proc/self/ns/user").unwrap();
    let left: Vec<_> = nobodys()
        .into_iter()
        .filter(|p| !before.contains(p))
        .filter(|p| {
            std::fs::read_link(format!("/proc/{p}/ns/user")).is_ok_and(|ns| ns != ours)
                || std::fs::read_link(format!("/proc/{p}/exe"))
                    .is_ok_and(|e| e.starts_with(bins.path()))
        })
        .collect();
    assert!(left.is_empty(), "left running as nobody: {left:?}");
}
