//! Lab 5 walkthrough: zombies, one SIGCHLD for many deaths, orphans and who adopts them.

use crate::error::Result;
use crate::walkthrough::{pid_of_role, Walk};
use crate::{inspect, process};
use rand::RngExt;
use std::time::{Duration, Instant};

pub fn walk(w: &mut Walk) -> Result<()> {
    w.step("A zombie: exited, not yet waited for");
    w.say(
        "The child exits at once. Until its parent calls wait, the kernel keeps its pid and exit
         status: ps shows it as Z <defunct>. It is already dead, so SIGKILL changes nothing; only
         the parent's wait removes it.",
    );
    let zombie = w.bin("zombie");
    // --hold: the zombie waits for its reaping until stdin says so, so --step can pause on it.
    let mut live = w.spawn(&[&zombie, "--hold"])?;
    let line = live.wait_for("then press Enter to reap")?;
    let child = crate::walkthrough::number_after(&line, "-p ").unwrap_or(0);
    w.pause(&format!(
        "child {child} is a zombie now: `ps -o pid,ppid,stat,comm -p {child}` in another terminal shows Z"
    ));
    let (code, out) = live.finish()?;
    w.expect(code == 0, "zombie exited 0");
    w.expect(
        out.contains("not yet waited for") && out.contains(" Z "),
        "the child showed state Z before the wait",
    );
    w.expect(
        out.contains("(a zombie is already dead):") && out.matches(" Z ").count() >= 2,
        "still Z after SIGKILL",
    );
    w.expect(out.contains("(gone)"), "gone from /proc after waitpid");

    let m: u32 = rand::rng().random_range(3..=8);
    w.step(&format!("{m} deaths, one SIGCHLD: reap in a loop"));
    w.say(
        "SIGCHLD is blocked while the children die, so it stays pending: a pending standard signal
         is one bit, not a counter. Unblocking delivers it once. A handler that reaps one child per
         signal would leave zombies; waitpid(-1, WNOHANG) in a loop reaps every child that has
         exited, however many signals arrived.",
    );
    let (code, out) = w.shell(&[&w.bin("reaper"), "--children", &m.to_string()])?;
    w.expect(
        code == 0,
        "reaper exited 0 (it checks 1 delivery and M reaped itself)",
    );
    w.expect(
        out.contains(&format!("delivered 1 time(s) for {m} deaths")),
        "one delivery for all deaths",
    );
    w.expect(
        out.contains(&format!("reaped {m} children")),
        "all children reaped",
    );

    let orphan = w.bin("orphan");
    w.step("An orphan, adopted by the subreaper its launcher declared");
    w.say(
        "The launcher calls prctl(PR_SET_CHILD_SUBREAPER, 1), forks a parent, which forks a child and
         exits. The child is re-parented to the nearest subreaper, the launcher, which reaps it.",
    );
    let (code, out) = w.shell(&[&orphan, "--subreaper"])?;
    let launcher = pid_of_role(&out, "launcher").unwrap_or(0);
    w.expect(code == 0, "orphan exited 0");
    w.expect(
        out.contains(&format!("my parent is now {launcher} ")),
        "the launcher adopted the child",
    );
    w.expect(
        out.contains("reaped adopted orphan"),
        "the launcher reaped it",
    );

    w.step("An orphan, adopted by the walkthrough (a subreaper further up)");
    w.say("Without --subreaper the nearest subreaper is this walkthrough, which declared itself one at start.");
    let me = std::process::id() as i32;
    let (_, out) = w.shell(&[&orphan])?;
    w.expect(
        out.contains(&format!("my parent is now {me} ")),
        "the walkthrough adopted the child",
    );
    w.settle();

    w.step("An orphan with no subreaper above it: PID 1 adopts it");
    w.say(
        "The walkthrough clears its own subreaper flag for this step. The child now goes to PID 1
         (or to a subreaper above the walkthrough, if your session has one, e.g. a terminal
         multiplexer or systemd --user). Until its new parent reaps it, the exited orphan is a
         zombie; a classic init reaps at once, the PID 1 of some containers only now and then.",
    );
    process::clear_child_subreaper()?;
    let run = w.shell(&[&orphan]);
    process::set_child_subreaper()?;
    let (_, out) = run?;
    let child = pid_of_role(&out, "child").unwrap_or(0);
    let adopted_by = crate::walkthrough::number_after(&out, "my parent is now ").unwrap_or(0);
    w.expect(
        adopted_by != me && adopted_by != 0,
        &format!("adopted by {adopted_by}, not by the walkthrough"),
    );
    // Observation, not synchronisation: nothing tells us when another process reaps.
    let t0 = Instant::now();
    let mut seen_zombie = false;
    while t0.elapsed() < Duration::from_secs(10) {
        match inspect::info(child) {
            Some(p) if p.is_zombie() => seen_zombie = true,
            Some(_) => {}
            None => break,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let gone = inspect::info(child).is_none();
    w.say(&format!(
        "child {child} was {}reaped by {adopted_by} after {} ms{}",
        if gone { "" } else { "NOT " },
        t0.elapsed().as_millis(),
        if seen_zombie {
            ", a zombie until then"
        } else {
            ""
        }
    ));
    w.expect(gone, "its new parent reaped it within 10 s");
    Ok(())
}
