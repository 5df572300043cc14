//! Lab 3: how fast does the watchdog bring a killed server back? From the kill() time
//! (CLOCK_MONOTONIC, taken here) to the replacement's first heartbeat (the `restart` event's
//! ts_ms, the same clock), over K kills with the restart-window limit off and no backoff.
//! Run with `make bench-restart`. Prints p50 / p99 / max; never asserts.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn num(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()
}

fn main() {
    let k: usize = std::env::var("K")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let dir = ipclab::fifo::private_dir().unwrap();
    let events = dir.path().join("events.jsonl");
    let mut wd = Command::new(env!("CARGO_BIN_EXE_watchdog"))
        .args([
            "--secondaries",
            "1",
            "--heartbeat-ms",
            "20",
            "--hang-ms",
            "1000",
            "--max-restarts",
            "0",
            "--window-ms",
            "0",
            "--events",
        ])
        .arg(&events)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(wd.stderr.take().unwrap());
    let mut next = |want: &str| loop {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "watchdog ended");
        if line.contains(want) {
            return line;
        }
    };
    let mut pid = num(
        &next("\"event\":\"start\",\"role\":\"secondary-1\""),
        "\"pid\":",
    )
    .unwrap() as i32;
    let mut lat = Vec::new();
    for _ in 0..k {
        let t_kill = ipclab::heartbeat::now_ms();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let line = next("\"event\":\"restart\",\"role\":\"secondary-1\"");
        lat.push(num(&line, "\"ts_ms\":").unwrap().saturating_sub(t_kill));
        pid = num(&line, "\"pid\":").unwrap() as i32;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(wd.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let _ = wd.wait();
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    println!("watchdog restart latency, kill() to first heartbeat, {k} kills (ms resolution)");
    println!(
        "  p50 {} ms  p99 {} ms  max {} ms  (goal: p99 under 5 ms)",
        p(0.5),
        p(0.99),
        lat[lat.len() - 1]
    );
    if std::env::var_os("VERBOSE").is_some() {
        println!("  all: {lat:?}");
    }
}
