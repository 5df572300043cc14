//! Lab 4: requests per second with 50 concurrent clients (each a new `client` process, so the
//! figure includes process start-up), against the dispatcher and 4 workers under the watchdog.
//! Run with `make bench-lab4`. Prints served / busy and the rate; never asserts.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = ipclab::fifo::private_dir().unwrap();
    let events = dir.path().join("events.jsonl");
    let mut wd = Command::new(env!("CARGO_BIN_EXE_watchdog"))
        .args([
            "--serve",
            "lab4",
            "--secondaries",
            "4",
            "--work-ms",
            "0",
            "--hang-ms",
            "5000",
            "--events",
        ])
        .arg(&events)
        .arg("--dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(wd.stderr.take().unwrap());
    let mut up = 0;
    while up < 5 {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0);
        up += line.contains("listening on") as usize;
    }
    std::thread::spawn(move || for _ in err.lines() {});
    let (mut served, mut busy) = (0, 0);
    let t0 = Instant::now();
    for _ in 0..rounds {
        let kids: Vec<_> = (0..50)
            .map(|i| {
                Command::new(env!("CARGO_BIN_EXE_client"))
                    .arg("--dir")
                    .arg(dir.path())
                    .args(["--request", &format!("r{i}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut k in kids {
            match k.wait().unwrap().code() {
                Some(0) => served += 1,
                Some(3) => busy += 1,
                other => panic!("client failed: {other:?}"),
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(wd.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let _ = wd.wait();
    println!(
        "lab 4, 4 workers, {rounds} rounds of 50 concurrent clients: {served} served, {busy} busy"
    );
    println!(
        "  {:.0} requests/s served, {:.0} answers/s (served or busy), in {secs:.2} s",
        served as f64 / secs,
        (served + busy) as f64 / secs
    );
}
