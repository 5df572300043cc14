//! Lab 9: the finger daemon and its client, as a student runs them: bad arguments, a directory
//! others may write, a port in use, a second start, queries (good, missing, hostile), the log,
//! SIGTERM. This test binary is a child subreaper, so each daemon is re-parented to it and
//! reaped here.

mod common;
use common::*;
use nix::unistd::Pid;
use std::path::Path;
use std::process::Command;

fn fingerd(dir: &Path, port: u16) -> Command {
    let mut c = Command::new(bin("fingerd"));
    c.arg("--dir")
        .arg(dir)
        .args(["--port", &port.to_string(), "--host", "127.0.0.1"]);
    c
}

fn ask(login: &str, port: u16, extra: &[&str]) -> std::process::Output {
    run(Command::new(bin("fingercli"))
        .arg(format!("--login={login}"))
        .args(["--host", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .args(extra))
}

/// Kills and reaps the daemon if the test fails before its SIGTERM: nothing is left running.
struct Daemon(i32);

impl Drop for Daemon {
    fn drop(&mut self) {
        let p = Pid::from_raw(self.0);
        if ipclab::process::signal(p, nix::sys::signal::Signal::SIGKILL).is_ok() {
            let _ = nix::sys::wait::waitpid(p, None);
        }
    }
}

fn me() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .name
}

fn one_line_exit(out: &std::process::Output, code: i32, needle: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(needle), "{err}");
}

#[test]
fn lab9_bad_input_is_one_line_and_nothing_is_made() {
    let _forks = common::fork_guard();
    let dir = private_dir();
    let port = ipclab::inet::free_port().unwrap();
    one_line_exit(&run(&mut Command::new(bin("fingerd"))), 2, "--dir");
    one_line_exit(
        &run(fingerd(dir.path(), port).args(["--port", "x"])),
        2,
        "--port",
    );
    // /tmp is everyone's: the pidfile could be planted there first.
    one_line_exit(
        &run(&mut fingerd(Path::new("/tmp"), port)),
        2,
        "not a private directory",
    );
    one_line_exit(
        &run(&mut fingerd(&dir.path().join("absent"), port)),
        2,
        "absent",
    );
    let held = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    one_line_exit(&run(&mut fingerd(dir.path(), port)), 1, "in use");
    drop(held);
    assert!(
        dir_entries(dir.path()).is_empty(),
        "{:?}",
        dir_entries(dir.path())
    );
    one_line_exit(&ask(&me(), port, &[]), 1, "refused");
    one_line_exit(&ask(&me(), port, &["--buffer", "0"]), 2, "--buffer");
}

/// The daemon's life: its answer equals the local finger's, in many recv calls with a small
/// buffer; hostile queries are refused and logged; a second start is refused; SIGTERM removes
/// the pidfile and the daemon exits 0.
#[test]
fn lab9_daemon_answers_refuses_logs_and_stops() {
    let _forks = common::fork_guard();
    ipclab::process::set_child_subreaper().unwrap();
    let dir = private_dir();
    let port = ipclab::inet::free_port().unwrap();
    let out = run(&mut fingerd(dir.path(), port));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let pid = number_after(&text(&out.stdout), "fingerd ").unwrap();
    let guard = Daemon(pid);
    let pidfile = dir.path().join("fingerd.pid");
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        pid.to_string()
    );
    let info = ipclab::inspect::info(pid).unwrap();
    assert_ne!(info.session, std::process::id() as i32);
    assert_eq!(info.tty_nr, 0);

    let local = run(Command::new("finger").args(["-l", "-m", &me()]));
    let out = ask(&me(), port, &["--buffer", "16", "--count"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), text(&local.stdout));
    let calls = number_after(&text(&out.stderr), "bytes in ").unwrap();
    assert!(calls > 4, "{}", text(&out.stderr));

    let out = ask("nosuch-user-9", port, &[]);
    assert!(
        text(&out.stdout).contains("no such user"),
        "{}",
        text(&out.stdout)
    );
    for hostile in ["x; id", "$(id)", "a@b", "-l", &"a".repeat(600)] {
        let out = ask(hostile, port, &[]);
        let answer = text(&out.stdout);
        assert!(answer.starts_with("fingerd: "), "{hostile}: {answer}");
        assert!(!answer.contains("uid="), "{hostile}: {answer}");
    }

    let again = run(&mut fingerd(dir.path(), port));
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));
    assert!(text(&again.stderr).contains("already running"));

    ipclab::process::signal(Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = ipclab::process::wait_for(Pid::from_raw(pid)).unwrap();
    std::mem::forget(guard);
    assert_eq!(
        status,
        nix::sys::wait::WaitStatus::Exited(Pid::from_raw(pid), 0)
    );
    assert!(!pidfile.exists());
    let log = std::fs::read_to_string(dir.path().join("fingerd.log")).unwrap();
    assert!(
        log.contains(&format!("login {:?} from 127.0.0.1:", me())),
        "{log}"
    );
    assert!(log.contains("refused (not a login: \"x; id\""), "{log}");
    assert!(log.contains("refused (forwarding"), "{log}");
    assert!(log.lines().last().unwrap().contains("SIGTERM"), "{log}");
}
