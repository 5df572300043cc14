//! Lab 2 — main server: N ping-pong exchanges over a pair of named pipes, then a clean shutdown
//! in the one order that leaves no zombie: the secondary exits first, main reaps it, main removes
//! the FIFOs, main exits.
//!
//! Syscalls, in order: mknodat(S_IFIFO) x2 (mkfifo), pipe2(O_CLOEXEC), clone (fork), execve (in
//! the child), openat(ping, O_WRONLY) — blocks until the secondary opens it for reading —,
//! openat(pong, O_RDONLY), then write/read per exchange, wait4, unlink x2, exit_group(0).
//!
//! Try: mkdir -p /tmp/pp && target/debug/pingpong --exchanges 3 --dir /tmp/pp
//!
//! strace shows:
//!   mknodat(AT_FDCWD, "DIR/ping", S_IFIFO|0600) = 0
//!   execve("target/debug/pingpong-secondary", [...]) = 0
//!   openat(AT_FDCWD, "DIR/ping", O_WRONLY|O_CLOEXEC) = 3
//!   write(3, "ping 1\n", 7) = 7
//!   wait4(PID, [{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = PID
//!   unlink("DIR/ping") = 0
//!
//! Faults, for the walkthrough: `--fault no-wait` never reaps the secondary (it stays
//! `<defunct>` until main exits on Enter or end of stdin); `--fault main-first` exits without
//! waiting, so the secondary is orphaned and re-parented.

use clap::{Parser, ValueEnum};
use ipclab::error::{Error, Result};
use ipclab::fifo::{self, FifoPair};
use ipclab::process::{self, tag, ExecGate};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Lab 2 main server: ping-pong over two FIFOs, secondary exits first")]
struct Args {
    /// Number of ping-pong exchanges.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    exchanges: u64,
    /// Existing directory, writable, where the two FIFOs are created.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Print the mean round-trip time on stderr.
    #[arg(long)]
    stats: bool,
    /// Do not print the `ping i` / `pong i` lines (for measuring).
    #[arg(long)]
    quiet: bool,
    /// Break the shutdown order on purpose, to see what goes wrong.
    #[arg(long, value_enum)]
    fault: Option<Fault>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Fault {
    /// Never wait for the secondary: it stays a zombie while main lives.
    NoWait,
    /// Exit without waiting: the secondary is orphaned and re-parented.
    MainFirst,
}

fn main() {
    ipclab::args::main(run)
}

fn run(args: &Args) -> Result<i32> {
    fifo::check_dir(&args.dir)?;
    ipclab::signals::ignore_sigpipe()?;
    let pair = FifoPair::create(&args.dir, "ping", "pong").map_err(|e| {
        if e.to_string().contains("EEXIST") {
            e.into_usage()
        } else {
            e
        }
    })?;
    let me = tag("main");
    ipclab::say!(
        "{me} created FIFOs {} and {}",
        pair.ping().display(),
        pair.pong().display()
    );

    // Everything the child needs is built before fork: it only calls execv.
    let path = process::sibling_binary("pingpong-secondary")?;
    let path_str = path.display().to_string();
    let mut argv = vec![
        path_str.clone(),
        "--exchanges".into(),
        args.exchanges.to_string(),
        "--ping".into(),
        pair.ping().display().to_string(),
        "--pong".into(),
        pair.pong().display().to_string(),
    ];
    if args.quiet {
        argv.push("--quiet".into());
    }
    if args.fault == Some(Fault::MainFirst) {
        argv.push("--linger".into());
    }
    let argv = process::argv(&argv)?;
    let cpath = argv[0].clone();
    let gate = ExecGate::new()?;
    std::io::stdout().flush().ok();

    // Safety: single-threaded here; the child only runs execv (or reports and _exits).
    let child = match unsafe { fork() } {
        Err(e) => return Err(Error::sys(e, "fork", "")),
        Ok(ForkResult::Child) => gate.exec(&cpath, &argv),
        Ok(ForkResult::Parent { child }) => child,
    };
    gate.wait_exec(child, &path_str)?;
    ipclab::say!("{me} started secondary {child} (fork + execve)");

    match exchange(args, &pair, child) {
        Ok(rtts) => {
            if args.stats {
                report_stats(&me, &rtts, args.exchanges);
            }
        }
        Err(e) => {
            // The secondary died or broke the protocol: reap it so it is no zombie, then fail.
            ipclab::say!("{e}");
            let _ = process::signal(child, nix::sys::signal::Signal::SIGTERM);
            if let Ok(st) = process::wait_for(child) {
                ipclab::say!("{me} secondary {child} {}; reaped", process::describe(&st));
            }
            pair.remove()?;
            return Ok(1);
        }
    }

    match args.fault {
        None => {
            let st = process::wait_for(child)?;
            ipclab::say!("{me} secondary {child} {}; reaped", process::describe(&st));
            pair.remove()?;
            ipclab::say!("{me} removed the FIFOs; exiting");
            Ok(if st == WaitStatus::Exited(child, 0) {
                0
            } else {
                1
            })
        }
        Some(Fault::NoWait) => {
            // WNOWAIT: learn that the child has exited without reaping it, so it stays a zombie.
            waitid(Id::Pid(child), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)
                .map_err(|e| Error::sys(e, "waitid", child))?;
            pair.remove()?;
            ipclab::say!(
                "{me} FAULT no-wait: secondary {child} has exited and is not reaped: a zombie \
                 until main exits (press Enter or close stdin)"
            );
            let _ = std::io::stdin().lock().read_line(&mut String::new());
            Ok(0)
        }
        Some(Fault::MainFirst) => {
            pair.remove()?;
            ipclab::say!("{me} FAULT main-first: exiting without waiting for secondary {child}");
            Ok(0)
        }
    }
}

/// Sends ping i, waits for pong i, N times. Returns each round trip when measuring.
fn exchange(args: &Args, pair: &FifoPair, child: Pid) -> Result<Vec<Duration>> {
    // Same order as the secondary (ping, then pong), or both would block in open().
    let mut to_secondary = fifo::open_write(pair.ping())?;
    let mut from_secondary = BufReader::new(fifo::open_read(pair.pong())?);
    let mut stdout = std::io::stdout().lock();
    let mut rtts = Vec::with_capacity(if args.stats {
        args.exchanges as usize
    } else {
        0
    });
    let mut msg = String::new();
    let mut line = String::new();
    for i in 1..=args.exchanges {
        if !args.quiet {
            writeln!(stdout, "ping {i}")
                .and_then(|_| stdout.flush())
                .map_err(|e| Error::io(&e, "write", "stdout"))?;
        }
        msg.clear();
        use std::fmt::Write as _;
        let _ = writeln!(msg, "ping {i}");
        let t0 = Instant::now();
        to_secondary.write_all(msg.as_bytes()).map_err(|e| {
            Error::io(
                &e,
                "write",
                format!("{} (secondary {child} gone?)", pair.ping().display()),
            )
        })?;
        line.clear();
        let n = from_secondary
            .read_line(&mut line)
            .map_err(|e| Error::io(&e, "read", pair.pong().display()))?;
        if args.stats {
            rtts.push(t0.elapsed());
        }
        if n == 0 {
            return Err(Error::runtime(format!(
                "end of file on {} after ping {i}: secondary {child} closed it (it died?)",
                pair.pong().display()
            )));
        }
        if line.trim_end() != format!("pong {i}") {
            return Err(Error::runtime(format!(
                "expected \"pong {i}\" from secondary {child}, got {:?}",
                line.trim_end()
            )));
        }
    }
    Ok(rtts)
}

fn report_stats(me: &str, rtts: &[Duration], n: u64) {
    let total: Duration = rtts.iter().sum();
    let mean = total.as_secs_f64() * 1e6 / n as f64;
    let min = rtts.iter().min().copied().unwrap_or_default();
    let max = rtts.iter().max().copied().unwrap_or_default();
    ipclab::say!(
        "{me} {n} exchanges, mean round trip {mean:.2} µs (min {:.2} µs, max {:.2} µs)",
        min.as_secs_f64() * 1e6,
        max.as_secs_f64() * 1e6
    );
}
