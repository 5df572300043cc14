//! Lab 6 walkthrough: how a process becomes a daemon, and how it is controlled afterwards.

use crate::error::Result;
use crate::inspect;
use crate::walkthrough::{number_after, Walk};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

pub fn walk(w: &mut Walk) -> Result<()> {
    let dir = crate::fifo::private_dir()?;
    let d = dir.path().display().to_string();
    let daemon = w.bin("daemon");
    let me = std::process::id() as i32;

    w.step("daemon start: fork, setsid, fork, umask, chdir /, close fds, pidfile");
    w.say(
        "The launcher forks and waits only for the middle process. The middle process calls setsid:
         a new session with no controlling terminal, itself the leader. It forks again and exits,
         so the daemon is not a session leader and can never acquire a terminal. The daemon sets
         umask, chdir(\"/\") (so it pins no mounted file system), closes every inherited fd, puts
         /dev/null on 0/1/2, takes the pidfile lock (flock) and tells the launcher it is ready.",
    );
    let (code, out) = w.shell(&[&daemon, "start", "--dir", &d])?;
    let pid = number_after(&out, "daemon ").unwrap_or(0);
    w.expect(
        code == 0 && pid > 0,
        "start exited 0 and named the daemon's pid",
    );
    w.pause(&format!(
        "daemon {pid} runs on its own: `ps -o pid,ppid,sid,tty,stat,comm -p {pid}` in another terminal"
    ));

    w.step("The evidence: parent, session, terminal, descriptors");
    let (code, out) = w.shell(&[&daemon, "status", "--dir", &d])?;
    w.expect(code == 0, "status exits 0 while running");
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
        "not a session leader (sid != pid)",
    );
    w.expect(
        info.as_ref().is_some_and(|i| i.tty_nr == 0),
        "no controlling terminal (tty ?)",
    );
    w.expect(
        info.as_ref().is_some_and(|i| i.ppid == me),
        &format!("its parent is the walkthrough ({me}, the nearest subreaper), not the launcher"),
    );
    w.expect(out.contains("session leader: no"), "status says the same");
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
        "0, 1 and 2 are /dev/null",
    );
    let sockets: std::collections::BTreeSet<&String> =
        fds.iter().filter(|f| f.starts_with("socket:")).collect();
    w.say(&format!(
        "Besides 0-2: the locked pidfile and the log, and {} descriptor(s) on {} socket(s). Those
         are the daemon's own, opened after it closed everything it inherited: the self-pipe of
         its signal handling. signal-hook makes it a Unix socket pair: one end the main loop polls,
         the other duplicated once per signal handled (SIGTERM, SIGHUP, SIGINT), which is why
         several fds name the same socket:[inode].",
        fds.iter().filter(|f| f.starts_with("socket:")).count(),
        sockets.len()
    ));

    w.step("A second start is refused: the pidfile is locked");
    let (code, _) = w.shell(&[&daemon, "start", "--dir", &d])?;
    w.expect(code == 2, "second start refused with exit status 2");

    w.step("SIGHUP reopens the log (log rotation), SIGTERM stops the daemon");
    w.say(
        "logrotate renames daemon.log; the daemon would go on writing to the renamed file through
         its open fd. SIGHUP makes it reopen daemon.log by name. `stop` sends SIGTERM and waits
         for the exit through a pidfd: the daemon removes its pidfile and exits 0. Signals that
         arrive together are handled in order, so the SIGHUP line is logged before the exit.",
    );
    let log = dir.path().join("daemon.log");
    let _ = w.shell(&[
        "mv",
        &log.display().to_string(),
        &format!("{d}/daemon.log.1"),
    ]);
    println!("   $ kill -HUP {pid}");
    crate::process::signal(Pid::from_raw(pid), Signal::SIGHUP)?;
    let (code, _) = w.shell(&[&daemon, "stop", "--dir", &d])?;
    w.expect(code == 0, "stop exited 0");
    let status = w.adopted.iter().find(|r| r.0 == pid).map(|r| r.1);
    w.expect(
        status == Some(0),
        "the daemon exited with status 0 (reaped by the walkthrough, its new parent)",
    );
    let _ = w.shell(&["sh", "-c", &format!("cat {d}/daemon.log.1 {d}/daemon.log")]);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    w.expect(
        text.contains("SIGHUP: log reopened"),
        "a new daemon.log was opened on SIGHUP",
    );
    w.expect(
        text.contains("SIGTERM: removing pidfile"),
        "the daemon logged its clean exit",
    );
    w.expect(
        !dir.path().join("daemon.pid").exists(),
        "the pidfile is gone",
    );

    w.step("Not running: status 3, stop 0 (LSB init-script codes)");
    let (code, _) = w.shell(&[&daemon, "status", "--dir", &d])?;
    w.expect(code == 3, "status exits 3");
    let (code, _) = w.shell(&[&daemon, "stop", "--dir", &d])?;
    w.expect(code == 0, "stop exits 0 with a message");

    w.step("A crash leaves a stale pidfile: the lock, not the file, decides");
    let (_, out) = w.shell(&[&daemon, "start", "--dir", &d])?;
    let pid = number_after(&out, "daemon ").unwrap_or(0);
    println!("   $ kill -9 {pid}");
    crate::process::signal(Pid::from_raw(pid), Signal::SIGKILL)?;
    wait_gone(w, pid);
    let (code, out) = w.shell(&[&daemon, "status", "--dir", &d])?;
    w.expect(
        code == 3 && out.contains("stale"),
        "status sees a stale pidfile, exits 3",
    );
    let (code, _) = w.shell(&[&daemon, "start", "--dir", &d])?;
    w.expect(code == 0, "start takes the stale pidfile over");
    let (code, _) = w.shell(&[&daemon, "stop", "--dir", &d])?;
    w.expect(code == 0, "stop exited 0");
    w.reap_adopted();
    Ok(())
}

/// The killed daemon is our adopted child: wait for it, which also reaps it.
fn wait_gone(w: &Walk, pid: i32) {
    if let Ok(st) = crate::process::wait_for(Pid::from_raw(pid)) {
        println!(
            "   (walkthrough, a subreaper, reaped adopted {pid}: {})",
            crate::process::describe(&st)
        );
    }
    let _ = w;
}
