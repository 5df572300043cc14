//! Lab 7, the IPC zoo: `ipclab bench` measures every mechanism of `mech` between two processes
//! — this one and a `zoo-peer` it forks and execs — as a ping-pong (round-trip latency and the
//! CPU time each side spends per round trip) and as a one-way stream (throughput), and the
//! cost of starting a process three ways. `compare` runs the C twins of `bench/twins.c` beside
//! their Rust counterparts.

pub mod mech;

use crate::error::{Error, Result};
use mech::{Endpoint, Kind};
use nix::unistd::{fork, ForkResult, Pid};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pin {
    /// Both processes on CPU 0.
    Same,
    /// Main on CPU 0, the peer on CPU 1.
    Split,
    /// Wherever the scheduler puts them.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Csv,
}

pub struct Options {
    pub mechanisms: Vec<String>,
    pub sizes: Vec<usize>,
    pub round_trips: u64,
    pub pin: Pin,
    pub format: Format,
    pub svg: Option<PathBuf>,
    /// Check every byte of every message (tests); by default only each message's sequence bytes.
    pub verify: bool,
    /// Run the C twins built at this path beside their Rust counterparts.
    pub compare_c: Option<PathBuf>,
    pub pairs: u32,
    /// Also measure fork, fork + exec and posix_spawn.
    pub process_costs: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Rtt {
    pub min: u64,
    pub median: u64,
    pub p99: u64,
    pub max: u64,
}

impl Rtt {
    pub fn of(mut ns: Vec<u64>) -> Rtt {
        ns.sort_unstable();
        let at = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize];
        Rtt {
            min: ns[0],
            median: at(0.5),
            p99: at(0.99),
            max: ns[ns.len() - 1],
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Cpu {
    pub main: u64,
    pub peer: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub mechanism: String,
    pub size: usize,
    pub round_trips: u64,
    pub rtt_ns: Rtt,
    /// Round trips timed together (each sample is a batch's mean; 1: each timed alone).
    pub rtt_batch: u64,
    pub throughput_msgs_s: f64,
    pub throughput_bytes_s: f64,
    pub cpu_ns_per_rt: Cpu,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Skipped {
    pub mechanism: String,
    pub size: usize,
    pub reason: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ProcessCost {
    pub how: String,
    pub runs: u32,
    pub ns: Rtt,
}

/// Validates everything first: bad input leaves nothing behind because nothing was created.
pub fn check(o: &Options) -> Result<Vec<Kind>> {
    let kinds: Vec<Kind> = if o.mechanisms.is_empty() {
        mech::ALL.to_vec()
    } else {
        o.mechanisms
            .iter()
            .map(|m| {
                Kind::parse(m).ok_or_else(|| {
                    let all: Vec<&str> = mech::ALL.iter().map(|k| k.name()).collect();
                    Error::usage(format!(
                        "unknown mechanism {m:?}: valid are {}",
                        all.join(", ")
                    ))
                })
            })
            .collect::<Result<_>>()?
    };
    if o.round_trips == 0 || o.round_trips > 10_000_000 {
        return Err(Error::usage(format!(
            "bad --round-trips {}: 1..=10000000",
            o.round_trips
        )));
    }
    for s in &o.sizes {
        if *s == 0 || *s > mech::MAX_SIZE {
            return Err(Error::usage(format!(
                "bad --size {s}: 1..={} bytes",
                mech::MAX_SIZE
            )));
        }
        // Asked for one mechanism by name, a size beyond it is an error, not a skipped row.
        if o.mechanisms.len() == 1 {
            let (max, why) = kinds[0].limit();
            if *s > max {
                return Err(Error::usage(format!(
                    "--size {s} is too big for {}: {why}",
                    kinds[0].name()
                )));
            }
        }
    }
    let cpus = nix::sched::sched_getaffinity(Pid::from_raw(0))
        .map(|set| {
            (0..nix::sched::CpuSet::count())
                .filter(|i| set.is_set(*i).unwrap_or(false))
                .count()
        })
        .unwrap_or(1);
    if o.pin == Pin::Split && cpus < 2 {
        return Err(Error::usage(format!(
            "--pin split needs 2 CPUs; this process may run on {cpus}"
        )));
    }
    for spinner in [Kind::ShmSpin, Kind::File] {
        if o.pin == Pin::Same && kinds == [spinner] {
            return Err(Error::usage(format!(
                "{} refuses --pin same: the polling side would hold the only CPU until its timeslice ends, every round trip",
                spinner.name()
            )));
        }
    }
    Ok(kinds)
}

fn pin_to(cpu: usize) -> Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).map_err(|e| Error::sys(e, "CPU_SET", cpu))?;
    nix::sched::sched_setaffinity(Pid::from_raw(0), &set)
        .map_err(|e| Error::sys(e, "sched_setaffinity", cpu))
}

/// CPU time (user + system) of this process so far, in ns.
pub fn cpu_ns() -> u64 {
    // Safety: getrusage fills a struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000_000 + tv.tv_usec as u64 * 1000;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// What reading the clock costs here: the median gap between two back-to-back readings.
pub fn clock_cost_ns() -> u64 {
    let mut gaps: Vec<u64> = (0..301)
        .map(|_| {
            let a = now_ns();
            now_ns() - a
        })
        .collect();
    gaps.sort_unstable();
    gaps[gaps.len() / 2]
}

/// Round trips timed together so that the two clock readings around them cost at most 1/32
/// of what is measured: the smallest power of two B with B × (a single round trip's median,
/// clock included) >= 64 × the clock's cost. 1 for every blocking mechanism on these machines;
/// the C twins are given the same B.
pub fn batch(pilot: &[u64], clock: u64) -> u64 {
    let mut p = pilot.to_vec();
    p.sort_unstable();
    let one = p.get(p.len() / 2).copied().unwrap_or(1).max(1);
    let mut b = 1u64;
    while b * one < 64 * clock && b < 4096 {
        b *= 2;
    }
    b
}

pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // Safety: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Message i's content: its sequence number in the first bytes; with `full`, every byte a
/// function of i, so a misplaced or stale byte anywhere is seen.
pub fn fill(buf: &mut [u8], i: u64, full: bool) {
    let seq = i.to_le_bytes();
    let n = buf.len().min(8);
    buf[..n].copy_from_slice(&seq[..n]);
    if full {
        for (j, b) in buf.iter_mut().enumerate().skip(8) {
            *b = (i as usize).wrapping_mul(31).wrapping_add(j) as u8;
        }
    }
}

pub fn verify(
    buf: &[u8],
    i: u64,
    full: bool,
    scratch: &mut [u8],
) -> std::result::Result<(), String> {
    fill(scratch, i, full);
    let n = if full { buf.len() } else { buf.len().min(8) };
    if buf[..n] != scratch[..n] {
        return Err(format!("message {i} arrived corrupted"));
    }
    Ok(())
}

/// Warm-up round trips before the timed ones.
fn warmup(k: u64) -> u64 {
    (k / 10).clamp(1, 200)
}

/// Messages of the one-way stream.
fn stream_len(k: u64) -> u64 {
    k.clamp(1, 20_000)
}

/// The peer's command line.
struct PeerArgs {
    kind: Kind,
    size: usize,
    k: u64,
    window: usize,
    verify: bool,
    cpu: Option<usize>,
    spec: String,
    report: RawFd,
}

impl PeerArgs {
    fn argv(&self, bin: &str) -> Vec<String> {
        let mut v = vec![
            bin.to_string(),
            "--mechanism".into(),
            self.kind.name().into(),
            "--size".into(),
            self.size.to_string(),
            "--round-trips".into(),
            self.k.to_string(),
            "--window".into(),
            self.window.to_string(),
            "--spec".into(),
            self.spec.clone(),
            "--report".into(),
            self.report.to_string(),
        ];
        if self.verify {
            v.push("--verify".into());
        }
        if let Some(c) = self.cpu {
            v.extend(["--cpu".into(), c.to_string()]);
        }
        v
    }
}

/// The peer's loop (bin/zoo-peer): the same round trips and stream as main, mirrored.
#[allow(clippy::too_many_arguments)]
pub fn serve(
    kind: Kind,
    spec: &str,
    size: usize,
    k: u64,
    window: usize,
    full: bool,
    cpu: Option<usize>,
    mut report: std::fs::File,
) -> Result<()> {
    if let Some(c) = cpu {
        pin_to(c)?;
    }
    // Opening a FIFO blocks until main opens the other end: say ready first. The others say
    // it once their end exists (a UDP peer says its port).
    if kind == Kind::Fifo {
        report
            .write_all(b"ready\n")
            .map_err(|e| Error::io(&e, "write", "report"))?;
    }
    let (mut ep, said) = mech::peer(kind, spec, size)?;
    if kind != Kind::Fifo {
        // One write: a line, not pieces.
        report
            .write_all(format!("ready {said}\n").as_bytes())
            .map_err(|e| Error::io(&e, "write", "report"))?;
    }
    let mut buf = vec![0u8; size];
    let mut scratch = vec![0u8; size];
    let io = |e: std::io::Error| Error::io(&e, kind.name(), "peer");
    for i in 0..warmup(k) {
        ep.recv(&mut buf).map_err(io)?;
        verify(&buf, i, full, &mut scratch).map_err(Error::runtime)?;
        ep.send(&buf).map_err(io)?;
    }
    let c0 = cpu_ns();
    for i in 0..k {
        ep.recv(&mut buf).map_err(io)?;
        verify(&buf, i, full, &mut scratch).map_err(Error::runtime)?;
        ep.send(&buf).map_err(io)?;
    }
    let c1 = cpu_ns();
    let n = stream_len(k);
    for i in 0..n {
        ep.recv(&mut buf).map_err(io)?;
        verify(&buf, i, full, &mut scratch).map_err(Error::runtime)?;
        if (i + 1) % window as u64 == 0 || i + 1 == n {
            ep.send(&buf).map_err(io)?;
        }
    }
    report
        .write_all(format!("cpu {}\n", c1 - c0).as_bytes())
        .map_err(|e| Error::io(&e, "write", "report"))?;
    Ok(())
}

/// fork + exec of the peer with `keep` inherited (close-on-exec cleared in the child only).
fn spawn(argv: &[String], keep: &[RawFd]) -> Result<Pid> {
    let cargv = crate::process::argv(argv)?;
    let gate = crate::process::ExecGate::new()?;
    // Safety: single-threaded; the child only clears FD_CLOEXEC and execs (or _exits).
    match unsafe { fork() } {
        Err(e) => Err(Error::sys(e, "fork", "zoo-peer")),
        Ok(ForkResult::Child) => {
            for fd in keep {
                // Safety: fcntl on inherited fds, async-signal-safe.
                unsafe { libc::fcntl(*fd, libc::F_SETFD, 0) };
            }
            gate.exec(&cargv[0], &cargv)
        }
        Ok(ForkResult::Parent { child }) => {
            gate.wait_exec(child, &argv[0])?;
            Ok(child)
        }
    }
}

/// Reads one line from the peer's report pipe (its readiness, then its CPU time).
fn line(r: &mut std::fs::File) -> Result<String> {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match r.read(&mut b) {
            Ok(0) => break,
            Ok(_) if b[0] == b'\n' => break,
            Ok(_) => out.push(b[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(&e, "read", "peer report")),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// One cell: mechanism × size, K timed round trips, then the stream.
pub fn cell(kind: Kind, size: usize, k: u64, pin: Pin, full: bool) -> Result<Row> {
    let peer_bin = crate::process::sibling_binary("zoo-peer")?;
    if pin != Pin::None {
        pin_to(0)?;
    }
    let mut s = mech::setup(kind, size)?;
    let (rep_r, rep_w): (OwnedFd, OwnedFd) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::sys(e, "pipe2", ""))?;
    let window = kind.slots(size);
    let args = PeerArgs {
        kind,
        size,
        k,
        window,
        verify: full,
        cpu: match pin {
            Pin::Same => Some(0),
            Pin::Split => Some(1),
            Pin::None => None,
        },
        spec: s.spec.clone(),
        report: rep_w.as_raw_fd(),
    };
    let mut keep = s.inherit.clone();
    keep.push(rep_w.as_raw_fd());
    let pid = spawn(&args.argv(&peer_bin.display().to_string()), &keep)?;
    drop(rep_w);
    let mut report = std::fs::File::from(rep_r);
    let result = (|| {
        let ready = line(&mut report)?;
        let said = ready.strip_prefix("ready").ok_or_else(|| {
            Error::runtime(format!(
                "{}: the peer failed to start ({ready:?})",
                kind.name()
            ))
        })?;
        let mut ep = s.finish(said, pid.as_raw())?;
        run_main(&mut *ep, kind, size, k, window, full)
    })();
    let (rtts, b, c_main, stream_s) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = crate::process::signal(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = crate::process::wait_for(pid);
            return Err(e);
        }
    };
    let peer_cpu: u64 = line(&mut report)?
        .strip_prefix("cpu ")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let st = crate::process::wait_for(pid)?;
    if crate::process::shell_status(&st) != 0 {
        return Err(Error::runtime(format!(
            "{}: the peer {}",
            kind.name(),
            crate::process::describe(&st)
        )));
    }
    drop(s);
    let n = stream_len(k) as f64;
    Ok(Row {
        mechanism: kind.name().into(),
        size,
        round_trips: k,
        rtt_ns: Rtt::of(rtts),
        rtt_batch: b,
        throughput_msgs_s: n / stream_s,
        throughput_bytes_s: n * size as f64 / stream_s,
        cpu_ns_per_rt: Cpu {
            main: c_main / k,
            peer: peer_cpu / k,
        },
    })
}

/// Main's loop: warm-up, K timed round trips, then the stream; (rtts, cpu ns, stream seconds).
fn run_main(
    ep: &mut dyn Endpoint,
    kind: Kind,
    size: usize,
    k: u64,
    window: usize,
    full: bool,
) -> Result<(Vec<u64>, u64, u64, f64)> {
    let mut out = vec![0u8; size];
    let mut back = vec![0u8; size];
    let mut scratch = vec![0u8; size];
    let io = |e: std::io::Error| Error::io(&e, kind.name(), "main");
    if !full {
        fill(&mut out, 0, true);
    }
    let mut pilot = Vec::new();
    for i in 0..warmup(k) {
        fill(&mut out, i, full);
        let t0 = now_ns();
        ep.send(&out).map_err(io)?;
        ep.recv(&mut back).map_err(io)?;
        pilot.push(now_ns() - t0);
        verify(&back, i, full, &mut scratch).map_err(Error::runtime)?;
    }
    // The figure must be the mechanism's, not the clock's: where a round trip is not much longer
    // than reading the clock twice (a spin), round trips are timed in batches (see `batch`).
    let b = if full {
        1
    } else {
        batch(&pilot, clock_cost_ns())
    };
    let mut rtts = Vec::with_capacity(k as usize);
    let c0 = cpu_ns();
    let mut i = 0;
    while i < k {
        let n = b.min(k - i);
        let t0 = now_ns();
        for j in i..i + n {
            fill(&mut out, j, full);
            ep.send(&out).map_err(io)?;
            ep.recv(&mut back).map_err(io)?;
            verify(&back, j, full, &mut scratch).map_err(Error::runtime)?;
        }
        let per = (now_ns() - t0) / n;
        rtts.extend(std::iter::repeat_n(per, n as usize));
        i += n;
    }
    let c1 = cpu_ns();
    let n = stream_len(k);
    let t0 = Instant::now();
    for i in 0..n {
        fill(&mut out, i, full);
        ep.send(&out).map_err(io)?;
        if (i + 1) % window as u64 == 0 || i + 1 == n {
            ep.recv(&mut back).map_err(io)?;
        }
    }
    Ok((rtts, b, c1 - c0, t0.elapsed().as_secs_f64()))
}

/// fork + waitpid, fork + exec + waitpid, posix_spawn + waitpid of `zoo-peer --noop`.
pub fn process_costs(runs: u32) -> Result<Vec<ProcessCost>> {
    let peer = crate::process::sibling_binary("zoo-peer")?;
    let argv = crate::process::argv(&[peer.display().to_string(), "--noop".into()])?;
    let mut ptrs: Vec<*mut libc::c_char> = argv.iter().map(|a| a.as_ptr() as *mut _).collect();
    ptrs.push(std::ptr::null_mut());
    let mut out = Vec::new();
    for how in ["fork+waitpid", "fork+exec+waitpid", "posix_spawn+waitpid"] {
        let mut ns = Vec::new();
        for _ in 0..runs {
            let t0 = now_ns();
            let pid = match how {
                "posix_spawn+waitpid" => {
                    let mut pid: libc::pid_t = 0;
                    // Safety: argv is NUL-terminated and outlives the call; environ is ours.
                    let r = unsafe {
                        libc::posix_spawn(
                            &mut pid,
                            argv[0].as_ptr(),
                            std::ptr::null(),
                            std::ptr::null(),
                            ptrs.as_ptr(),
                            std::ptr::null(),
                        )
                    };
                    if r != 0 {
                        return Err(Error::sys(
                            nix::errno::Errno::from_raw(r),
                            "posix_spawn",
                            peer.display(),
                        ));
                    }
                    Pid::from_raw(pid)
                }
                // Safety: single-threaded; the child calls only execv or _exit.
                _ => match unsafe { fork() } {
                    Err(e) => return Err(Error::sys(e, "fork", "")),
                    Ok(ForkResult::Child) => unsafe {
                        if how == "fork+exec+waitpid" {
                            libc::execv(
                                argv[0].as_ptr(),
                                ptrs.as_ptr() as *const *const libc::c_char,
                            );
                        }
                        libc::_exit(0)
                    },
                    Ok(ForkResult::Parent { child }) => child,
                },
            };
            crate::process::wait_for(pid)?;
            ns.push(now_ns() - t0);
        }
        out.push(ProcessCost {
            how: how.into(),
            runs,
            ns: Rtt::of(ns),
        });
    }
    Ok(out)
}

pub struct Report {
    pub rows: Vec<Row>,
    pub skipped: Vec<Skipped>,
    pub costs: Vec<ProcessCost>,
    pub pin: Pin,
}

pub fn bench(o: &Options) -> Result<i32> {
    let kinds = check(o)?;
    if let Some(c) = &o.compare_c {
        return compare(c, o);
    }
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for kind in &kinds {
        for &size in &o.sizes {
            let (max, why) = kind.limit();
            if size > max {
                skipped.push(Skipped {
                    mechanism: kind.name().into(),
                    size,
                    reason: why,
                });
                continue;
            }
            if matches!(*kind, Kind::ShmSpin | Kind::File) && o.pin == Pin::Same {
                skipped.push(Skipped {
                    mechanism: kind.name().into(),
                    size,
                    reason: "refused with --pin same: a spinning side would hold the only CPU a timeslice per round trip".into(),
                });
                continue;
            }
            rows.push(cell(*kind, size, o.round_trips, o.pin, o.verify)?);
        }
    }
    let costs = if o.process_costs {
        process_costs(if o.round_trips < 200 { 20 } else { 200 })?
    } else {
        Vec::new()
    };
    let r = Report {
        rows,
        skipped,
        costs,
        pin: o.pin,
    };
    print!("{}", render(&r, o.format));
    if let Some(svg) = &o.svg {
        std::fs::write(svg, chart(&r)).map_err(|e| Error::io(&e, "write", svg.display()))?;
        eprintln!("chart: {}", svg.display());
    }
    Ok(0)
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

pub fn render(r: &Report, f: Format) -> String {
    match f {
        Format::Json => {
            let v = serde_json::json!({
                "pin": format!("{:?}", r.pin).to_lowercase(),
                "rows": r.rows,
                "skipped": r.skipped,
                "process_costs": r.costs,
                "conclusions": conclusions(r),
            });
            format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
        }
        Format::Csv => {
            let mut s = String::from("mechanism,size,round_trips,rtt_min_ns,rtt_median_ns,rtt_p99_ns,rtt_max_ns,throughput_msgs_s,throughput_bytes_s,cpu_main_ns_per_rt,cpu_peer_ns_per_rt\n");
            for x in &r.rows {
                s.push_str(&format!(
                    "{},{},{},{},{},{},{},{:.0},{:.0},{},{}\n",
                    x.mechanism,
                    x.size,
                    x.round_trips,
                    x.rtt_ns.min,
                    x.rtt_ns.median,
                    x.rtt_ns.p99,
                    x.rtt_ns.max,
                    x.throughput_msgs_s,
                    x.throughput_bytes_s,
                    x.cpu_ns_per_rt.main,
                    x.cpu_ns_per_rt.peer
                ));
            }
            s
        }
        Format::Text => {
            let mut s = format!(
                "round trip (µs)                        min   median      p99      max   stream msg/s     MB/s   cpu/rt µs main peer   (pin {})\n",
                format!("{:?}", r.pin).to_lowercase()
            );
            for x in &r.rows {
                s.push_str(&format!(
                    "{:<12} {:>6} B  x{:<7} {:>8} {:>8} {:>8} {:>8}   {:>12.0} {:>8.1}   {:>8} {:>8}\n",
                    x.mechanism,
                    x.size,
                    x.round_trips,
                    us(x.rtt_ns.min),
                    us(x.rtt_ns.median),
                    us(x.rtt_ns.p99),
                    us(x.rtt_ns.max),
                    x.throughput_msgs_s,
                    x.throughput_bytes_s / 1e6,
                    us(x.cpu_ns_per_rt.main),
                    us(x.cpu_ns_per_rt.peer)
                ));
            }
            let batched: Vec<String> = r
                .rows
                .iter()
                .filter(|x| x.rtt_batch > 1)
                .map(|x| format!("{} {} B in batches of {}", x.mechanism, x.size, x.rtt_batch))
                .collect();
            if !batched.is_empty() {
                s.push_str(&format!(
                    "  (reading the clock costs {} ns here: round trips not much longer are timed in batches, each sample a batch's mean, so min/p99/max are of those means: {})\n",
                    clock_cost_ns(),
                    batched.join(", ")
                ));
            }
            for k in &r.skipped {
                s.push_str(&format!(
                    "{:<12} {:>6} B  skipped: {}\n",
                    k.mechanism, k.size, k.reason
                ));
            }
            let c = conclusions(r);
            if !c.is_empty() {
                s.push_str("computed from this run:\n");
                for line in c {
                    s.push_str(&format!("  - {line}\n"));
                }
            }
            s.push_str("starting a process (µs)                min   median      p99      max\n");
            for c in &r.costs {
                s.push_str(&format!(
                    "{:<22} x{:<6}   {:>8} {:>8} {:>8} {:>8}\n",
                    c.how,
                    c.runs,
                    us(c.ns.min),
                    us(c.ns.median),
                    us(c.ns.p99),
                    us(c.ns.max)
                ));
            }
            s
        }
    }
}

/// Mechanisms that spin or poll instead of sleeping: their figure is not a wake-up's.
const POLLING: [&str; 2] = ["shm-spin", "file"];

/// What this run shows, computed from its rows (never written in advance): per size, the
/// ranking with each mechanism's ratio to the fastest; how close the blocking mechanisms are
/// (they are wake-up bound); what polling buys and costs; where, as messages grow, shared
/// memory overtakes a pipe.
pub fn conclusions(r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    let mut sizes: Vec<usize> = r.rows.iter().map(|x| x.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let at = |m: &str, s: usize| {
        r.rows
            .iter()
            .find(|x| x.mechanism == m && x.size == s)
            .map(|x| x.rtt_ns.median.max(1))
    };
    for &size in &sizes {
        let mut rows: Vec<&Row> = r.rows.iter().filter(|x| x.size == size).collect();
        rows.sort_by_key(|x| x.rtt_ns.median);
        let Some(best) = rows.first() else { continue };
        let b = best.rtt_ns.median.max(1) as f64;
        let rank: Vec<String> = rows
            .iter()
            .map(|x| {
                format!(
                    "{} {} µs (x{:.1})",
                    x.mechanism,
                    us(x.rtt_ns.median),
                    x.rtt_ns.median as f64 / b
                )
            })
            .collect();
        out.push(format!("{size} B, fastest first: {}", rank.join(", ")));
        let blocking: Vec<&&Row> = rows
            .iter()
            .filter(|x| !POLLING.contains(&x.mechanism.as_str()))
            .collect();
        if let (Some(f), Some(l)) = (blocking.first(), blocking.last()) {
            if blocking.len() >= 3 {
                out.push(format!(
                    "{size} B: the {} blocking mechanisms span x{:.1}, from {} ({} µs) to {} ({} µs): each round trip is two sleeps and two wake-ups, which cost more than copying {size} B",
                    blocking.len(),
                    l.rtt_ns.median as f64 / f.rtt_ns.median.max(1) as f64,
                    f.mechanism,
                    us(f.rtt_ns.median),
                    l.mechanism,
                    us(l.rtt_ns.median)
                ));
            }
        }
        for p in POLLING {
            let (Some(x), Some(f)) = (rows.iter().find(|x| x.mechanism == p), blocking.first())
            else {
                continue;
            };
            let ratio = f.rtt_ns.median as f64 / x.rtt_ns.median.max(1) as f64;
            let than = if ratio >= 1.0 {
                format!("{ratio:.1} times faster than")
            } else {
                format!("{:.1} times slower than", 1.0 / ratio)
            };
            out.push(format!(
                "{size} B: {p} takes {} µs, {than} the fastest blocking one ({}), and burns {} µs of CPU per round trip on each side while it waits",
                us(x.rtt_ns.median),
                f.mechanism,
                us(x.cpu_ns_per_rt.main.max(x.cpu_ns_per_rt.peer))
            ));
        }
    }
    // Copies grow with size, a futex wake does not: the crossover, if the sizes show one.
    if sizes.len() >= 2 {
        let pair: Vec<(usize, u64, u64)> = sizes
            .iter()
            .filter_map(|&s| Some((s, at("pipe", s)?, at("shm-futex", s)?)))
            .collect();
        match pair.iter().find(|(_, p, f)| f < p) {
            Some((s, p, f)) if pair.first().is_some_and(|x| x.2 >= x.1) => out.push(format!(
                "shm-futex overtakes pipe from {s} B ({} against {} µs): a pipe copies each message twice, shared memory not at all",
                us(*f),
                us(*p)
            )),
            Some(_) => out.push("shm-futex is faster than pipe at every size measured".into()),
            None if !pair.is_empty() => out.push(format!(
                "pipe stays faster than shm-futex up to {} B: the copies cost less than the difference in wake-ups",
                pair.last().map_or(0, |x| x.0)
            )),
            None => {}
        }
    }
    out
}

/// One line per mechanism: why it costs what it costs.
pub fn why(kind: &str) -> &'static str {
    match kind {
        "pipe" | "fifo" => "2 syscalls and 2 copies per message (user -> kernel buffer -> user); the reader sleeps and is woken",
        "unix-stream" | "socketpair" => "like a pipe, through socket buffers: 2 copies, a wake-up per message",
        "unix-dgram" => "one datagram per message, copied twice; boundaries kept by the kernel",
        "tcp" => "the whole TCP/IP stack on loopback: headers, checksums offloaded, ACKs",
        "udp" => "the IP stack without connection state: one datagram per message",
        "posix-mq" => "mq_send/mq_receive: copied into and out of the kernel, priority-ordered",
        "sysv-mq" => "msgsnd/msgrcv: copied twice, typed messages",
        "shm-futex" => "no copy through the kernel: the data is already shared; one futex wake per message",
        "shm-sem" => "a process-shared semaphore (a futex inside glibc): no kernel copy",
        "shm-condvar" => "mutex + condition variable in shared memory: more atomics, same futex underneath",
        "shm-spin" => "no syscall at all: the reader spins on a shared word and burns its CPU meanwhile",
        "signal" => "a real-time signal with an 8-byte value: kernel queueing and a sigwaitinfo per message",
        "eventfd" => "an 8-byte counter: a write wakes the reader's read",
        "file-lock" => "fcntl locks handed over like a token, data by pwrite/pread: three lock syscalls per hand-over",
        "file" => "a plain file: pwrite the data and a sequence number; the reader polls it with pread, a syscall per look, burning its CPU",
        _ => "",
    }
}

/// Bar chart of the median round trip per mechanism (log scale), one bar per message size
/// measured, mechanisms ordered by their figure at the smallest size.
pub fn chart(r: &Report) -> String {
    let mut sizes: Vec<usize> = r.rows.iter().map(|x| x.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let smallest = sizes.first().copied().unwrap_or(1);
    let mut mechs: Vec<(&str, u64)> = Vec::new();
    for x in &r.rows {
        if !mechs.iter().any(|(m, _)| *m == x.mechanism) {
            let key = r
                .rows
                .iter()
                .filter(|y| y.mechanism == x.mechanism)
                .min_by_key(|y| (y.size != smallest, y.size))
                .map_or(u64::MAX, |y| y.rtt_ns.median);
            mechs.push((&x.mechanism, key));
        }
    }
    mechs.sort_by_key(|m| m.1);
    let medians = r.rows.iter().map(|x| x.rtt_ns.median.max(1));
    let max = medians.clone().max().unwrap_or(1).max(10) as f64;
    let min = medians.min().unwrap_or(1) as f64;
    let lo = (min.log10().floor()).max(0.0);
    let hi = max.log10().ceil().max(lo + 1.0);
    let colors = ["#1f4e9c", "#d9822b", "#2a7", "#a3a", "#777", "#b00"];
    let (left, width, bar_h) = (130.0, 420.0, 12.0);
    let per_mech = bar_h * sizes.len() as f64 + 12.0;
    let top = 70.0;
    let height = top + mechs.len() as f64 * per_mech + 50.0;
    let x = |ns: f64| left + width * ((ns.max(1.0).log10() - lo) / (hi - lo));
    let mut s = format!(
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="1200" height="{height:.0}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="22" font-size="15" font-weight="bold">Median round trip per mechanism and message size, log scale (pin {})</text>
"##,
        format!("{:?}", r.pin).to_lowercase()
    );
    for (i, size) in sizes.iter().enumerate() {
        let lx = 10.0 + 110.0 * i as f64;
        s.push_str(&format!(
            r##"<g class="legend"><rect x="{lx:.0}" y="34" width="12" height="12" fill="{}"/><text x="{:.0}" y="45">{size} B</text></g>
"##,
            colors[i % colors.len()],
            lx + 16.0
        ));
    }
    let mut d = lo as i32;
    while d as f64 <= hi {
        let xx = x(10f64.powi(d));
        let label = match d {
            0..=2 => format!("{} ns", 10u64.pow(d as u32)),
            3..=5 => format!("{} µs", 10u64.pow(d as u32 - 3)),
            _ => format!("{} ms", 10u64.pow((d - 6).max(0) as u32)),
        };
        s.push_str(&format!(
            r##"<line x1="{xx:.0}" y1="{:.0}" x2="{xx:.0}" y2="{:.0}" stroke="#ddd"/><text x="{xx:.0}" y="{:.0}" text-anchor="middle" fill="#666">{label}</text>
"##,
            top - 10.0,
            height - 30.0,
            height - 15.0
        ));
        d += 1;
    }
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    for (i, (m, _)) in mechs.iter().enumerate() {
        let y0 = top + i as f64 * per_mech;
        s.push_str(&format!(
            r##"<g class="bar" data-mechanism="{m}"><text x="{:.0}" y="{:.0}" text-anchor="end">{m}</text>"##,
            left - 8.0,
            y0 + 11.0
        ));
        for (k, size) in sizes.iter().enumerate() {
            let y = y0 + k as f64 * bar_h;
            let Some(row) = r.rows.iter().find(|x| x.mechanism == *m && x.size == *size) else {
                continue;
            };
            let w = x(row.rtt_ns.median as f64) - left;
            let note = if k == 0 {
                format!(" — {}", esc(why(m)))
            } else {
                String::new()
            };
            s.push_str(&format!(
                r##"<rect x="{left:.0}" y="{y:.0}" width="{w:.1}" height="{:.0}" fill="{}" data-size="{size}"/><text x="{:.0}" y="{:.0}" font-size="10">{size} B: {} µs{note}</text>"##,
                bar_h - 2.0,
                colors[k % colors.len()],
                left + w + 6.0,
                y + 9.0,
                us(row.rtt_ns.median),
            ));
        }
        s.push_str("</g>\n");
    }
    s.push_str("</svg>\n");
    s
}

/// The C twins beside their Rust counterparts, interleaved pair by pair, same pinning: the
/// Rust/C ratio of medians, with min and max over the pairs. A goal (≤ 1.05) is reported, never
/// enforced.
pub fn compare(twins: &std::path::Path, o: &Options) -> Result<i32> {
    // Every mechanism has its twin in bench/twins.c.
    let mechs: Vec<&str> = if o.mechanisms.is_empty() {
        mech::ALL.iter().map(|k| k.name()).collect()
    } else {
        o.mechanisms.iter().map(String::as_str).collect()
    };
    let size = o.sizes.first().copied().unwrap_or(64);
    let pin = match o.pin {
        Pin::None => "none",
        Pin::Same => "same",
        Pin::Split => "split",
    };
    println!(
        "Rust vs C twins: {} round trips of {size} B, pin {pin}, {} interleaved pairs",
        o.round_trips, o.pairs
    );
    println!("mechanism      Rust median µs   C median µs   Rust/C ratio: min  median   max   goal <= 1.10   batch");
    for m in mechs {
        let kind = Kind::parse(m).ok_or_else(|| Error::usage(format!("no mechanism {m}")))?;
        if matches!(kind, Kind::ShmSpin | Kind::File) && o.pin == Pin::Same {
            println!("{m:<14} skipped: polling refuses --pin same");
            continue;
        }
        // eventfd carries at most 7 bytes: measured at the largest size it takes.
        let size = size.min(kind.limit().0);
        let (mut rs, mut cs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let mut batch = 1;
        for _ in 0..o.pairs.max(1) {
            let row = cell(kind, size, o.round_trips, o.pin, false)?;
            let (r, b) = (row.rtt_ns.median, row.rtt_batch);
            batch = b;
            // Timed the same way: the twin is given the batch the Rust side used.
            let out = std::process::Command::new(twins)
                .args([
                    m,
                    &size.to_string(),
                    &o.round_trips.to_string(),
                    pin,
                    &b.to_string(),
                ])
                .output()
                .map_err(|e| Error::io(&e, "exec", twins.display()))?;
            if !out.status.success() {
                return Err(Error::runtime(format!(
                    "{} {m}: {}",
                    twins.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            let c: u64 = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .nth(1)
                .and_then(|x| x.parse().ok())
                .ok_or_else(|| Error::runtime(format!("{m}: the twin printed no median")))?;
            rs.push(r);
            cs.push(c);
            ratios.push(r as f64 / c.max(1) as f64);
        }
        ratios.sort_by(|a, b| a.total_cmp(b));
        let med = |v: &mut Vec<u64>| {
            v.sort_unstable();
            v[v.len() / 2]
        };
        let rm = ratios[ratios.len() / 2];
        println!(
            "{m:<14} {:>14} {:>13}   {:>17.3} {:>7.3} {:>5.3}   {:<12} {batch}",
            us(med(&mut rs)),
            us(med(&mut cs)),
            ratios[0],
            rm,
            ratios[ratios.len() - 1],
            if rm <= 1.10 { "met" } else { "not met" }
        );
    }
    Ok(0)
}
