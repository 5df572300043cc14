//! Lab 4: the 7-step handoff between client, dispatcher and workers over Unix sockets; busy
//! answers, malformed frames, a worker killed mid-request; nothing left behind.

mod common;
use common::*;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::io::BufRead;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};

struct Server {
    child: Child,
    err: std::io::BufReader<std::process::ChildStderr>,
}

/// Starts a server and waits for its "listening" line: its socket exists from then on.
fn server(args: &[&str], dir: &std::path::Path) -> Server {
    let mut child = Command::new(bin(args[0]))
        .args(&args[1..])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = stderr_reader(&mut child);
    read_until(&mut err, "listening on");
    Server { child, err }
}

impl Server {
    fn stop(mut self) -> i32 {
        let _ = nix::sys::signal::kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        let _ = self.err.lines().count();
        code
    }
}

fn client(dir: &std::path::Path, request: &str) -> Command {
    let mut c = Command::new(bin("client"));
    c.arg("--dir").arg(dir).args(["--request", request]);
    c
}

fn payload() -> String {
    format!("req{:08x}", rand::random::<u32>())
}

/// Steps 1-7: the client gets the uppercase answer from a worker, and the dispatcher hears DONE.
#[test]
fn lab4_seven_step_handoff() {
    let _forks = common::fork_guard();
    let dir = private_dir();
    let w1 = server(&["worker", "--id", "1"], dir.path());
    let w2 = server(&["worker", "--id", "2"], dir.path());
    let mut d = server(&["dispatcher", "--workers", "2"], dir.path());
    let p = payload();
    let out = run(&mut client(dir.path(), &p));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{}\n", p.to_uppercase()));
    let steps = text(&out.stderr);
    for s in ["1 connected", "4 sent to", "5 sending", "6 answered"] {
        assert!(steps.contains(s), "{s}: {steps}");
    }
    read_until(&mut d.err, "7 worker-1 says it has finished");
    assert_eq!(d.stop(), 0);
    assert_eq!(w1.stop(), 0);
    assert_eq!(w2.stop(), 0);
    assert!(
        dir_entries(dir.path()).is_empty(),
        "sockets removed: {:?}",
        dir_entries(dir.path())
    );
    Clean::new("ipclab-none").check();
}

/// 50 clients at once against 2 slow workers: each is served (right answer) or told BUSY.
#[test]
fn lab4_fifty_concurrent_clients_served_or_busy() {
    let _forks = common::fork_guard();
    let dir = private_dir();
    let w1 = server(&["worker", "--id", "1", "--work-ms", "20"], dir.path());
    let w2 = server(&["worker", "--id", "2", "--work-ms", "20"], dir.path());
    let d = server(&["dispatcher", "--workers", "2"], dir.path());
    let reqs: Vec<String> = (0..50).map(|_| payload()).collect();
    let kids: Vec<Child> = reqs
        .iter()
        .map(|r| {
            client(dir.path(), r)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let (mut served, mut busy) = (0, 0);
    for (k, r) in kids.into_iter().zip(&reqs) {
        let out = finish(k);
        match out.status.code() {
            Some(0) => {
                assert_eq!(text(&out.stdout).trim(), r.to_uppercase());
                served += 1;
            }
            Some(3) => busy += 1,
            other => panic!("client {r}: {other:?} {}", text(&out.stderr)),
        }
    }
    assert_eq!(served + busy, 50, "none lost");
    assert!(served >= 1, "{served} served, {busy} busy");
    for s in [d, w1, w2] {
        assert_eq!(s.stop(), 0);
    }
    assert!(dir_entries(dir.path()).is_empty());
    Clean::new("ipclab-none").check();
}

/// Garbage to the dispatcher or a worker gets an ERR reply; both keep serving.
#[test]
fn lab4_malformed_frames_get_an_error_and_no_crash() {
    let _forks = common::fork_guard();
    let dir = private_dir();
    let w = server(&["worker", "--id", "1"], dir.path());
    let d = server(&["dispatcher", "--workers", "1"], dir.path());
    for sock in ["dispatcher.sock", "worker-1.ctl"] {
        let mut s = UnixStream::connect(dir.path().join(sock)).unwrap();
        std::io::Write::write_all(&mut s, &[0xff, 0xff, 0xff, 0xff, b'x']).unwrap();
        let reply = ipclab::frame::read(&mut s).unwrap().unwrap();
        assert!(reply.starts_with("ERR malformed frame"), "{sock}: {reply}");
        let mut s = UnixStream::connect(dir.path().join(sock)).unwrap();
        ipclab::frame::write(&mut s, "NONSENSE").unwrap();
        let reply = ipclab::frame::read(&mut s).unwrap().unwrap();
        assert!(reply.starts_with("ERR"), "{sock}: {reply}");
    }
    let p = payload();
    let out = run(&mut client(dir.path(), &p));
    assert_eq!(
        out.status.code(),
        Some(0),
        "still serving: {}",
        text(&out.stderr)
    );
    assert_eq!(d.stop(), 0);
    assert_eq!(w.stop(), 0);
    Clean::new("ipclab-none").check();
}

/// kill -9 of the worker while it works: the client reports the error, exit 1.
#[test]
fn lab4_worker_killed_mid_request_leaves_client_with_error() {
    let _forks = common::fork_guard();
    let dir = private_dir();
    let mut w = server(&["worker", "--id", "1", "--work-ms", "10000"], dir.path());
    let d = server(&["dispatcher", "--workers", "1"], dir.path());
    let c = client(dir.path(), "x")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    read_until(&mut w.err, "5 request received");
    let _ = nix::sys::signal::kill(Pid::from_raw(w.child.id() as i32), Signal::SIGKILL);
    let out = finish(c);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("closed the connection before answering"),
        "{}",
        text(&out.stderr)
    );
    let _ = w.child.wait();
    assert_eq!(d.stop(), 0);
    Clean::new("ipclab-none").check();
}

/// A client pointed at nothing, a socket path in use: one line, exit 2, nothing removed.
#[test]
fn lab4_bad_input_is_one_line_exit_2() {
    let _forks = common::fork_guard();
    let dir = private_dir();
    let out = run(&mut client(dir.path(), "x"));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("ENOENT") && text(&out.stderr).lines().count() == 1);
    let w = server(&["worker", "--id", "1"], dir.path());
    let out = run(Command::new(bin("worker"))
        .args(["--id", "1", "--dir"])
        .arg(dir.path()));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("EADDRINUSE"));
    assert!(
        dir.path().join("worker-1.ctl").exists(),
        "the other worker's socket is left alone"
    );
    assert_eq!(w.stop(), 0);
    Clean::new("ipclab-none").check();
}

/// Under the lab 3 watchdog: a worker killed mid-request is restarted on the same socket path,
/// and the next client is served by it.
#[test]
fn lab4_under_watchdog_killed_worker_is_restarted() {
    let _forks = common::fork_guard();
    let dir = private_dir();
    let events = dir.path().join("events.jsonl");
    let mut wd = Command::new(bin("watchdog"))
        .args([
            "--serve",
            "lab4",
            "--secondaries",
            "1",
            "--work-ms",
            "10000",
            "--heartbeat-ms",
            "50",
            "--hang-ms",
            "20000",
            "--events",
        ])
        .arg(&events)
        .arg("--dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = stderr_reader(&mut wd);
    for _ in 0..2 {
        read_until(&mut err, "listening on");
    }
    let c = client(dir.path(), "doomed")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let seen = read_until(&mut err, "5 request received: doomed");
    let line = seen.lines().last().unwrap();
    let victim = number_after(line, "[worker-1 ").unwrap();
    let _ = nix::sys::signal::kill(Pid::from_raw(victim), Signal::SIGKILL);
    let out = finish(c);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    // The replacement binds (prints "listening") and beats (the watchdog logs "restart") in
    // either order: wait for both.
    let (mut restarted, mut listening) = (false, false);
    while !(restarted && listening) {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "watchdog output ended"
        );
        restarted |= line.contains("\"event\":\"restart\",\"role\":\"worker-1\"");
        listening |= line.contains("listening on");
    }
    // The restarted worker would take 10 s: ask the dispatcher only whether it is reachable.
    let mut s = UnixStream::connect(dir.path().join("worker-1.ctl")).unwrap();
    ipclab::frame::write(&mut s, "FREE?").unwrap();
    assert_eq!(ipclab::frame::read(&mut s).unwrap().as_deref(), Some("YES"));
    drop(s);
    let _ = nix::sys::signal::kill(Pid::from_raw(wd.id() as i32), Signal::SIGTERM);
    assert_eq!(wd.wait().unwrap().code(), Some(0));
    let _ = err.lines().count();
    assert_eq!(dir_entries(dir.path()), ["events.jsonl"]);
    Clean::new("ipclab-none").check();
}
