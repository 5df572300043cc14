//! Lab 3: the watchdog restarts what dies and what hangs, gives up on crash loops, stops in
//! order, and its event log tells the truth (every pid checked against the real tree).

mod common;
use common::*;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::Value;
use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

struct Wd {
    child: Child,
    err: std::io::BufReader<std::process::ChildStderr>,
    events: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn watchdog(extra: &[&str]) -> Wd {
    let dir = private_dir();
    let events = dir.path().join("events.jsonl");
    let mut child = Command::new(bin("watchdog"))
        .args([
            "--secondaries",
            "2",
            "--heartbeat-ms",
            "20",
            "--hang-ms",
            "200",
            "--events",
        ])
        .arg(&events)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group, so a test can signal the whole tree as a terminal would.
        .process_group(0)
        .spawn()
        .unwrap();
    let err = stderr_reader(&mut child);
    Wd {
        child,
        err,
        events,
        _dir: dir,
    }
}

/// A test that fails midway still leaves nothing running: the watchdog is told to stop (its
/// orderly shutdown ends and reaps its servers and unlinks its segments), then killed if it
/// does not within the safety net.
impl Drop for Wd {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = ipclab::process::signal(pid, Signal::SIGTERM);
        let pidfd = ipclab::process::pidfd_open(pid);
        let ended = pidfd.as_ref().is_ok_and(|fd| {
            ipclab::signals::poll_fds(&[std::os::fd::AsFd::as_fd(fd)], Some(SAFETY))
                .is_ok_and(|r| r.first().copied().unwrap_or(false))
        });
        if !ended {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Wd {
    /// Waits for an event line (the watchdog echoes each on stderr) and returns its pid.
    fn wait(&mut self, event: &str, role: &str) -> i32 {
        let seen = read_until(
            &mut self.err,
            &format!("\"event\":\"{event}\",\"role\":\"{role}\""),
        );
        let last = seen.lines().last().unwrap().to_string();
        number_after(&last, "\"pid\":").unwrap_or(0)
    }

    fn kill(&self, pid: i32, sig: Signal) {
        ipclab::process::signal(Pid::from_raw(pid), sig).unwrap();
    }

    /// SIGTERM, then exit status and the parsed event log.
    fn stop(self) -> (i32, Vec<Value>) {
        self.kill(self.child.id() as i32, Signal::SIGTERM);
        self.end()
    }

    /// Waits (SAFETY at most) for the watchdog to exit: exit status and the parsed event log.
    fn end(mut self) -> (i32, Vec<Value>) {
        let pid = Pid::from_raw(self.child.id() as i32);
        let fd = ipclab::process::pidfd_open(pid).unwrap();
        let ended = ipclab::signals::poll_fds(&[std::os::fd::AsFd::as_fd(&fd)], Some(SAFETY))
            .is_ok_and(|r| r.first().copied().unwrap_or(false));
        assert!(ended, "the watchdog did not exit within {SAFETY:?}");
        let st = self.child.wait().unwrap();
        let _ = (&mut self.err).lines().count();
        let log = std::fs::read_to_string(&self.events).unwrap();
        let evs = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        (st.code().unwrap_or(-1), evs)
    }
}

fn shm_count() -> usize {
    ipclab::inspect::shm_objects(&format!("ipclab-{}-", nix::unistd::getuid())).len()
}

/// Kill a secondary, freeze the other, kill main: each is restarted; SIGTERM stops all in order.
#[test]
fn lab3_restarts_crashed_and_hung_servers_then_stops_in_order() {
    let _forks = common::fork_guard();
    let shm_before = shm_count();
    let mut w = watchdog(&[]);
    let wpid = w.child.id() as i32;
    let main = w.wait("start", "main");
    let s1 = w.wait("start", "secondary-1");
    let s2 = w.wait("start", "secondary-2");
    for p in [main, s1, s2] {
        assert_eq!(
            ipclab::inspect::info(p).unwrap().ppid,
            wpid,
            "3.a: the watchdog is every server's parent"
        );
    }
    w.kill(s1, Signal::SIGKILL);
    let s1b = w.wait("restart", "secondary-1");
    assert_ne!(s1b, s1);
    w.kill(s2, Signal::SIGSTOP);
    assert_eq!(w.wait("hang", "secondary-2"), s2);
    let s2b = w.wait("restart", "secondary-2");
    assert_ne!(s2b, s2);
    w.kill(main, Signal::SIGKILL);
    w.wait("restart", "main");
    let kids: Vec<i32> = ipclab::inspect::children(wpid)
        .iter()
        .map(|p| p.pid)
        .collect();
    assert!(
        kids.contains(&s1b) && kids.contains(&s2b),
        "secondaries survive main's restart: {kids:?}"
    );

    let (code, evs) = w.stop();
    assert_eq!(code, 0);
    let field = |e: &Value, k: &str| e[k].as_str().unwrap_or("").to_string();
    let exits: Vec<(String, i64)> = evs
        .iter()
        .filter(|e| field(e, "event") == "exit")
        .map(|e| (field(e, "role"), e["status"].as_i64().unwrap()))
        .collect();
    assert!(exits.contains(&("secondary-1".into(), 137)), "{exits:?}");
    assert!(
        exits.contains(&("secondary-2".into(), 143)),
        "hung: SIGTERM after SIGCONT: {exits:?}"
    );
    assert!(exits.contains(&("main".into(), 137)));
    // Shutdown order: after the shutdown event, secondaries' exits come before main's.
    let after: Vec<String> = evs
        .iter()
        .skip_while(|e| field(e, "event") != "shutdown")
        .filter(|e| field(e, "event") == "exit")
        .map(|e| field(e, "role"))
        .collect();
    let pos = |r: &str| after.iter().position(|x| x == r).unwrap();
    assert!(
        pos("secondary-1") < pos("main") && pos("secondary-2") < pos("main"),
        "{after:?}"
    );
    assert_eq!(
        after.last().map(|s| s.as_str()),
        Some("watchdog"),
        "{after:?}"
    );
    for e in evs.iter().filter(|e| field(e, "event") == "restart") {
        assert!(e["latency_ms"].as_u64().is_some(), "{e}");
    }
    assert_eq!(shm_count(), shm_before, "heartbeat table unlinked");
    Clean::new("ipclab-none").check();
}

/// A server that keeps dying is restarted with backoff, then given up on, and says so.
#[test]
fn lab3_crash_loop_is_given_up() {
    let _forks = common::fork_guard();
    let mut w = watchdog(&["--max-restarts", "2", "--window-ms", "60000"]);
    let mut pid = w.wait("start", "secondary-1");
    for _ in 0..2 {
        w.kill(pid, Signal::SIGKILL);
        pid = w.wait("restart", "secondary-1");
    }
    w.kill(pid, Signal::SIGKILL);
    w.wait("give-up", "secondary-1");
    let (code, evs) = w.stop();
    assert_eq!(code, 0);
    let starts = evs
        .iter()
        .filter(|e| e["event"] == "start" && e["role"] == "secondary-1")
        .count();
    assert_eq!(starts, 3, "first start and two restarts, then none");
    Clean::new("ipclab-none").check();
}

/// 3.b: ordering a frozen secondary through its data FIFO restarts nothing.
#[test]
fn lab3_control_over_data_restarts_nothing() {
    let _forks = common::fork_guard();
    let mut w = watchdog(&["--fault", "control-over-data"]);
    w.wait("start", "main");
    let s1 = w.wait("start", "secondary-1");
    w.kill(s1, Signal::SIGSTOP);
    w.wait("hang", "secondary-1");
    let seen = read_until(&mut w.err, "FAULT control-over-data");
    assert!(seen.contains("nothing reads it"));
    assert!(
        ipclab::inspect::info(s1).is_some_and(|p| p.state == 'T'),
        "still frozen, never restarted"
    );
    let (code, evs) = w.stop();
    assert_eq!(
        code, 0,
        "shutdown still ends a stopped server (SIGTERM + SIGCONT)"
    );
    assert!(!evs
        .iter()
        .any(|e| e["event"] == "restart" && e["role"] == "secondary-1"));
    Clean::new("ipclab-none").check();
}

/// SIGTERM to the whole process group at once (as `timeout` or `kill -TERM -PGID` sends it):
/// servers die on their own while the watchdog shuts down; it must not wait for a death it has
/// already reaped (it hung so before), and exits 0 having logged every exit.
#[test]
fn lab3_sigterm_to_the_whole_group_still_shuts_down() {
    let _forks = common::fork_guard();
    for _ in 0..3 {
        let mut w = watchdog(&[]);
        w.wait("start", "secondary-2");
        let pgid = Pid::from_raw(-(w.child.id() as i32));
        nix::sys::signal::kill(pgid, Signal::SIGTERM).unwrap();
        let (code, evs) = w.end();
        assert_eq!(code, 0);
        let exits = evs.iter().filter(|e| e["event"] == "exit").count();
        assert_eq!(exits, 4, "three servers and the watchdog: {evs:?}");
    }
    Clean::new("ipclab-none").check();
}

/// Bad flags: one line, exit 2, nothing created.
#[test]
fn lab3_bad_input_is_one_line_exit_2() {
    let _forks = common::fork_guard();
    let shm_before = shm_count();
    let dir = private_dir();
    let ev = dir.path().join("ev");
    let ev = ev.to_str().unwrap();
    for (args, what) in [
        (
            vec!["--heartbeat-ms", "500", "--hang-ms", "100", "--events", ev],
            "must be shorter than --hang-ms",
        ),
        (vec!["--secondaries", "0", "--events", ev], "--secondaries"),
        (
            vec!["--secondaries", "100000", "--events", ev],
            "--secondaries",
        ),
        (vec!["--fault", "nonsense", "--events", ev], "--fault"),
        (vec!["--dispatcher", "x", "--events", ev], "--serve lab4"),
        (
            vec!["--serve", "lab4", "--worker", "'x", "--events", ev],
            "unbalanced quotes",
        ),
        (vec!["--events", "/nonexistent/dir/ev"], "ENOENT"),
    ] {
        let out = run(Command::new(bin("watchdog")).args(&args));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(what), "{what}: {err}");
    }
    assert!(dir_entries(dir.path()).is_empty());
    assert_eq!(shm_count(), shm_before);
}
