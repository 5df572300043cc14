//! Lab 7 walkthrough: the IPC zoo measured on this machine, then the same pair of mechanisms on
//! one CPU and across two.

use crate::error::Result;
use crate::walkthrough::Walk;

pub fn walk(w: &mut Walk) -> Result<()> {
    let ipclab = w.bin("ipclab");
    // Where the student looks: target/ of the checkout they run it in, else the current
    // directory, else their home; never a temporary directory that outlives nothing.
    let writable = |d: &std::path::Path| {
        std::fs::create_dir_all(d).is_ok() && tempfile::tempfile_in(d).is_ok()
    };
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let dir = [
        Some(std::path::PathBuf::from("target")),
        Some(".".into()),
        home,
    ]
    .into_iter()
    .flatten()
    .find(|d| writable(d))
    .ok_or_else(|| {
        crate::error::Error::runtime(
            "nowhere to write lab7.svg: target/, the current directory and HOME are read-only",
        )
    })?;
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let svg_path = dir.join("lab7.svg");
    let svg = svg_path.to_str().unwrap_or("target/lab7.svg");
    w.step("Every mechanism, 1-byte and 4 KiB messages");
    w.say(
        "Each row is main and a peer it forked and exec'd exchanging messages: the round trip
         (min, median, p99, max), a one-way stream, and the CPU each side burns per round trip.
         Signals and eventfd carry at most 8 (7) bytes: their 4 KiB rows are skipped, with the
         reason.",
    );
    let (code, out) = w.shell(&[
        &ipclab,
        "bench",
        "--size",
        "1",
        "--size",
        "4096",
        "--round-trips",
        "2000",
        "--svg",
        svg,
    ])?;
    w.expect(code == 0, "the bench ran");
    w.expect(
        out.contains("computed from this run:") && out.contains("fastest first"),
        "the bench computed its ranking and ratios from this very run",
    );
    for m in crate::zoo::mech::ALL {
        w.expect(
            out.lines().any(|l| l.starts_with(m.name())),
            &format!("{} measured", m.name()),
        );
    }
    w.expect(
        std::path::Path::new(svg).exists(),
        &format!("the bar chart is in {svg}"),
    );
    let med = |name: &str| -> Option<f64> {
        out.lines()
            .find(|l| l.starts_with(name) && l.contains("     1 B"))
            .and_then(|l| l.split_whitespace().nth(5))
            .and_then(|v| v.parse().ok())
    };
    if let (Some(pipe), Some(spin)) = (med("pipe "), med("shm-spin")) {
        w.say(&format!(
            "Here: a pipe round trip takes {pipe} µs (two syscalls, two copies, a sleeping reader
             woken each way); spinning on shared memory takes {spin} µs and no syscall, but the
             cpu/rt column shows a core burnt while it waits."
        ));
    }

    w.step("Same CPU or two CPUs");
    w.say(
        "Pinned to one CPU, a blocking round trip is two context switches on that CPU; pinned
         apart, each message must wake the other CPU, an inter-processor interrupt that virtual
         machines make dear. shm-spin refuses --pin same: the spinner would keep the only CPU
         until its timeslice ends.",
    );
    let mut pipe_at = Vec::new();
    for pin in ["same", "split"] {
        let (code, out) = w.shell(&[
            &ipclab,
            "bench",
            "--mechanism",
            "pipe",
            "--mechanism",
            "shm-futex",
            "--size",
            "64",
            "--round-trips",
            "2000",
            "--pin",
            pin,
            "--no-process-costs",
        ])?;
        w.expect(code == 0, &format!("--pin {pin} ran"));
        let median = out
            .lines()
            .find(|l| l.starts_with("pipe "))
            .and_then(|l| l.split_whitespace().nth(5).map(str::to_string));
        pipe_at.push(median.unwrap_or("?".into()));
    }
    w.say(&format!(
        "Here a 64-byte pipe round trip took {} µs on one CPU and {} µs across two.",
        pipe_at[0], pipe_at[1]
    ));
    let (code, out) = w.shell(&[
        &ipclab,
        "bench",
        "--mechanism",
        "shm-spin",
        "--pin",
        "same",
        "--size",
        "64",
    ])?;
    w.expect(
        code == 2 && out.contains("refuses --pin same"),
        "shm-spin refuses --pin same, in one line, exit 2",
    );
    Ok(())
}
