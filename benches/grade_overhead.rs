//! How much does grading add to a lab 2 run? The reference run directly (fork + exec + wait, the
//! same N) and the same run under `ipclab grade 2`, interleaved, K times each; then `grade all`.
//! Run with `make bench-grade` (release build). Prints medians and spreads, never asserts.

use std::process::Command;
use std::time::{Duration, Instant};

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let k: usize = std::env::var("K")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let ipclab = env!("CARGO_BIN_EXE_ipclab");
    let pingpong = env!("CARGO_BIN_EXE_pingpong");
    let contract = ipclab::spec::find(2).unwrap().contract.unwrap();
    let seed: u64 = 12345;
    let n = ipclab::grade::param_n(ipclab::grade::run_seed(seed, 0), &contract);
    let (mut direct, mut graded) = (Vec::new(), Vec::new());
    for _ in 0..k {
        let dir = ipclab::fifo::private_dir().unwrap();
        let t = Instant::now();
        let st = Command::new(pingpong)
            .args(["--exchanges", &n.to_string(), "--dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        direct.push(t.elapsed());
        assert!(st.status.success());
        let t = Instant::now();
        let st = Command::new(ipclab)
            .args([
                "grade",
                "2",
                "--seed",
                &seed.to_string(),
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        graded.push(t.elapsed());
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
    }
    let (lo_d, hi_d) = (
        direct.iter().min().copied().unwrap(),
        direct.iter().max().copied().unwrap(),
    );
    let (lo_g, hi_g) = (
        graded.iter().min().copied().unwrap(),
        graded.iter().max().copied().unwrap(),
    );
    let (md, mg) = (median(&mut direct), median(&mut graded));
    println!("lab 2 reference, N = {n}, {k} interleaved pairs");
    println!(
        "  direct          median {:7.2} ms  (min {:.2}, max {:.2})",
        ms(md),
        ms(lo_d),
        ms(hi_d)
    );
    println!(
        "  ipclab grade 2  median {:7.2} ms  (min {:.2}, max {:.2})",
        ms(mg),
        ms(lo_g),
        ms(hi_g)
    );
    println!(
        "  added by grading: {:.2} ms per run (median difference; goal <= 35 ms)",
        ms(mg) - ms(md)
    );
    let mut all = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let st = Command::new(ipclab)
            .args(["grade", "all", "--format", "json"])
            .output()
            .unwrap();
        all.push(t.elapsed());
        assert!(
            st.status.success(),
            "{}{}",
            String::from_utf8_lossy(&st.stdout),
            String::from_utf8_lossy(&st.stderr)
        );
    }
    println!(
        "ipclab grade all: median {:.1} ms over 5 runs (goal < 10 s)",
        ms(median(&mut all))
    );
}
