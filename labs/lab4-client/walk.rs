//! Lab 4 walkthrough: the 7-step handoff, a BUSY answer, a malformed frame, a worker killed
//! mid-request and restarted by the lab 3 watchdog.

use crate::error::{Error, Result};
use crate::frame;
use crate::walkthrough::Walk;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::os::unix::net::UnixStream;

pub fn walk(w: &mut Walk) -> Result<()> {
    let dir = crate::fifo::private_dir()?;
    let d = dir.path().display().to_string();
    let events = dir.path().join("events.jsonl");
    let (wd, client) = (w.bin("watchdog"), w.bin("client"));
    // The events file lives beside DIR's sockets; it is the only file left at the end.
    let ev = events.display().to_string();

    w.step("A dispatcher and two workers, started by the lab 3 watchdog, on Unix sockets");
    w.say(
        "socket(AF_UNIX, SOCK_STREAM), bind to a path, listen: each server gets an address in the
         file system (type `s` in ls -l). Messages are frames: a 4-byte big-endian length, then
         that many bytes of text, because a stream has no message boundaries of its own. The
         watchdog starts them all and restarts any that dies (lab 3).",
    );
    let mut sup = w.spawn(&[
        &wd,
        "--serve",
        "lab4",
        "--secondaries",
        "2",
        "--work-ms",
        "1500",
        "--heartbeat-ms",
        "50",
        "--hang-ms",
        "3000",
        "--events",
        &ev,
        "--dir",
        &d,
    ])?;
    // The three start in any order: wait for three "listening" lines.
    for _ in 0..3 {
        sup.wait_for("listening on")?;
    }
    let _ = w.shell(&["ls", "-l", &d]);
    w.pause(&format!(
        "the servers listen: `ls -l {d}` and `ipclab ps {}` in another terminal",
        sup.pid()
    ));

    w.step("One client: the 7 steps");
    w.say(
        "1 the client connects to the dispatcher; 2 the dispatcher asks a worker FREE?; 3 a free
         worker says YES (and is reserved); 4 the dispatcher sends the client the worker's socket
         path and closes; 5 the client sends its request to the worker; 6 the worker answers and
         closes; 7 the dispatcher asks the worker DONE? and it says YES once it has finished.",
    );
    let (code, out) = w.shell(&[&client, "--dir", &d, "--request", "hello"])?;
    w.expect(
        code == 0 && out.contains("HELLO"),
        "the client got its answer from a worker",
    );
    sup.wait_for("7 worker-")?;
    w.expect(true, "step 7: the dispatcher heard DONE from the worker");

    w.step("Three clients at once for two workers: one is told BUSY");
    w.say(
        "Each request takes 1.5 s. The dispatcher takes connections one at a time, in the order
         they reached its listening socket: the first two it accepts reserve both workers, which
         then answer NO at once; the third it accepts gets an explicit BUSY and the connection
         closes, instead of waiting. Which client is third is not decided by its name: it is the
         one whose connect() the kernel queued last, which depends on how the three processes
         happened to be scheduled.",
    );
    let kids: Vec<crate::walkthrough::Live> = (1..=3)
        .map(|i| w.spawn(&[&client, "--dir", &d, "--request", &format!("c{i}")]))
        .collect::<Result<_>>()?;
    let mut codes = Vec::new();
    let mut busy = Vec::new();
    for (i, k) in kids.into_iter().enumerate() {
        let code = k.finish()?.0;
        if code == 3 {
            busy.push(format!("c{}", i + 1));
        }
        codes.push(code);
    }
    codes.sort();
    w.say(&format!("This time {} was told BUSY.", busy.join(", ")));
    w.expect(
        codes == [0, 0, 3],
        &format!("two served, one BUSY (exit statuses {codes:?})"),
    );
    sup.wait_for("7 worker-")?;
    sup.wait_for("7 worker-")?;

    w.step("A malformed frame gets an error, never a crash");
    let mut s = UnixStream::connect(dir.path().join("dispatcher.sock"))
        .map_err(|e| Error::io(&e, "connect", "dispatcher.sock"))?;
    println!("   (sending a frame that claims 4294967295 bytes)");
    std::io::Write::write_all(&mut s, &[0xff, 0xff, 0xff, 0xff])
        .map_err(|e| Error::io(&e, "write", "dispatcher.sock"))?;
    let reply = frame::read(&mut s).ok().flatten().unwrap_or_default();
    println!("   reply: {reply}");
    w.expect(
        reply.starts_with("ERR malformed frame"),
        "the dispatcher answered ERR and kept running",
    );

    w.step("A worker killed mid-request: its client gets an error, the watchdog restarts it");
    let mut c = w.spawn(&[&client, "--dir", &d, "--request", "doomed"])?;
    let line = c.wait_for("4 sent to")?;
    let n = crate::walkthrough::number_after(&line, "/worker-").unwrap_or(1);
    let busy = sup.wait_for("5 request received: doomed")?;
    let victim = crate::walkthrough::number_after(&busy, &format!("[worker-{n} ")).unwrap_or(0);
    println!("   $ kill -9 {victim}   (worker-{n}, busy with the request)");
    crate::process::signal(Pid::from_raw(victim), Signal::SIGKILL)?;
    let (code, out) = c.finish()?;
    w.expect(
        code == 1 && out.contains("closed the connection before answering"),
        "the client reported the worker's death",
    );
    sup.wait_for(&format!("\"event\":\"restart\",\"role\":\"worker-{n}\""))?;
    w.expect(
        true,
        "the watchdog restarted the worker (it rebinds the dead socket's path)",
    );
    let (code, out) = w.shell(&[&client, "--dir", &d, "--request", "again"])?;
    w.expect(code == 0 && out.contains("AGAIN"), "served again");

    w.step("SIGTERM to the watchdog: workers, then the dispatcher, each removes its socket");
    crate::process::signal(Pid::from_raw(sup.pid()), Signal::SIGTERM)?;
    let (code, _) = sup.finish()?;
    w.expect(code == 0, "the watchdog exited 0");
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    w.expect(
        left == ["events.jsonl"],
        &format!("only the events file is left ({left:?})"),
    );
    Ok(())
}
