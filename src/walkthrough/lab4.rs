//! Lab 4 walkthrough: the 7-step handoff, a BUSY answer, a malformed frame, a worker killed
//! mid-request.

use super::Walk;
use crate::error::{Error, Result};
use crate::frame;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::os::unix::net::UnixStream;

pub fn walk(w: &mut Walk) -> Result<()> {
    let dir = crate::fifo::private_dir()?;
    let d = dir.path().display().to_string();
    let (worker, dispatcher, client) = (w.bin("worker"), w.bin("dispatcher"), w.bin("client"));

    w.step("Two workers and a dispatcher, each on a Unix socket in a private directory");
    w.say(
        "socket(AF_UNIX, SOCK_STREAM), bind to a path, listen: each server gets an address in the
         file system (type `s` in ls -l). Messages are frames: a 4-byte big-endian length, then
         that many bytes of text, because a stream has no message boundaries of its own.",
    );
    let mut w1 = w.spawn(&[&worker, "--id", "1", "--dir", &d, "--work-ms", "400"])?;
    w1.echo = false;
    w1.wait_for("listening on")?;
    let mut w2 = w.spawn(&[&worker, "--id", "2", "--dir", &d, "--work-ms", "400"])?;
    w2.echo = false;
    w2.wait_for("listening on")?;
    let mut disp = w.spawn(&[&dispatcher, "--workers", "2", "--dir", &d])?;
    disp.wait_for("listening on")?;
    let _ = w.shell(&["ls", "-l", &d]);

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
    disp.wait_for("7 worker-1 says it has finished")?;
    w.expect(true, "step 7: the dispatcher heard DONE from the worker");

    w.step("Three clients at once for two workers: one is told BUSY");
    w.say("Both workers are reserved by the first two clients (each request takes 400 ms): the third gets an explicit BUSY and the connection closes, instead of waiting.");
    let kids: Vec<super::Live> = (1..=3)
        .map(|i| w.spawn(&[&client, "--dir", &d, "--request", &format!("c{i}")]))
        .collect::<Result<_>>()?;
    let mut codes = Vec::new();
    for k in kids {
        codes.push(k.finish()?.0);
    }
    codes.sort();
    w.expect(
        codes == [0, 0, 3],
        &format!("two served, one BUSY (exit statuses {codes:?})"),
    );
    // Both workers free again (step 7 heard for each) before the next demo.
    disp.wait_for("7 worker-")?;
    disp.wait_for("7 worker-")?;

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

    w.step("A worker killed mid-request: its client gets an error");
    let mut c = w.spawn(&[&client, "--dir", &d, "--request", "doomed"])?;
    let line = c.wait_for("4 sent to")?;
    c.wait_for("5 sending the request")?;
    let n = super::number_after(&line, "/worker-").unwrap_or(1);
    let (mut victim, survivor) = if n == 1 { (w1, w2) } else { (w2, w1) };
    victim.wait_for("5 request received: doomed")?;
    println!(
        "   $ kill -9 {}   (worker-{n}, busy with the request)",
        victim.pid()
    );
    crate::process::signal(Pid::from_raw(victim.pid()), Signal::SIGKILL)?;
    let (code, out) = c.finish()?;
    w.expect(
        code == 1 && out.contains("closed the connection before answering"),
        "the client reported the worker's death",
    );
    let _ = victim.finish();
    for ext in ["ctl", "sock"] {
        std::fs::remove_file(dir.path().join(format!("worker-{n}.{ext}"))).ok();
    }
    w.say("(the dead worker could not remove its sockets; under the lab 3 watchdog it would be restarted — not wired here yet.)");

    w.step("SIGTERM: each server removes its socket and exits 0");
    for live in [disp, survivor] {
        crate::process::signal(Pid::from_raw(live.pid()), Signal::SIGTERM)?;
        let (code, _) = live.finish()?;
        w.expect(code == 0, "exited 0");
    }
    let left = std::fs::read_dir(dir.path())
        .map(|r| r.count())
        .unwrap_or(0);
    w.expect(left == 0, "no socket left in the directory");
    Ok(())
}
