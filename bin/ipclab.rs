//! ipclab — the course's command line: list the labs, run a lab's narrated walkthrough, check
//! the machine (doctor), remove what an interrupted run left (clean).
//!
//! Syscalls: those of the reference programs it runs; itself prctl(PR_SET_CHILD_SUBREAPER) and
//! wait4 on the orphans it adopts during a walkthrough.
//!
//! Try: target/debug/ipclab list ; target/debug/ipclab lab 2
//!
//! strace shows:
//!   prctl(PR_SET_CHILD_SUBREAPER, 1) = 0
//!   wait4(-1, NULL, WNOHANG, NULL) = -1 ECHILD (No child processes)
//!   exit_group(0) = ?

use clap::{Parser, Subcommand};
use ipclab::error::{exit_with, Error, Result};

#[derive(Parser)]
#[command(name = "ipclab", version, about = "Labs for low-level Unix IPC")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum HostsCmd {
    /// Make K hosts h1..hK (1..=64), each with its address, user, home and sshd.
    Up {
        k: usize,
        /// Perturb every program started on the hosts (grade --race's shim, set by each sshd
        /// with this seed); `hosts perturbed` lists them.
        #[arg(long, value_name = "SEED")]
        race: Option<u64>,
    },
    /// The programs the race injection perturbed on each host (`hosts up --race`).
    Perturbed,
    /// Remove the hosts: what runs on them, their namespaces, users, keys.
    Down,
    /// The machine file: one hostname a line.
    List,
    /// Cut the links between two groups of hosts, both ways (nftables drops): h1,h2 h3.
    Partition { a: String, b: String },
    /// Undo every partition.
    Heal,
    /// Delay messages between hosts: TCP between them goes through a relay that holds each
    /// piece back by its link's delay and can record every byte.
    Relay {
        #[command(subcommand)]
        cmd: RelayCmd,
    },
    /// A seeded fault schedule on the hosts: pauses, crashes, restarts, partitions, a JSON line
    /// at each edge (the same seed, the same plan; --replay a printed plan).
    Faults {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Faults in the plan.
        #[arg(long, default_value_t = 5)]
        count: usize,
        /// Mean time between two faults, in ms.
        #[arg(long, default_value_t = 2000)]
        gap_ms: u64,
        /// Kinds to draw from (default: all four).
        #[arg(long, value_enum, value_delimiter = ',')]
        kinds: Vec<ipclab::faults::Kind>,
        /// Hosts to hit (default: every host).
        #[arg(long, value_delimiter = ',')]
        on: Vec<String>,
        /// Print the plan and do nothing.
        #[arg(long)]
        plan_only: bool,
        /// Apply this plan (JSON lines, as --plan-only prints them) instead of drawing one.
        #[arg(long, value_name = "FILE")]
        replay: Option<std::path::PathBuf>,
    },
    /// Who is connected to whom: the TCP connections between the hosts' programs, from the
    /// kernel's tables (whatever the programs log), and whether they form one ring.
    Links,
    /// Run CMD on HOST as its user, from its home (default: a shell), as if logged in there.
    Exec {
        host: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
}

#[derive(Subcommand)]
enum RelayCmd {
    /// Start it: --delay FROM:TO:MS[:JITTER] per link (h1:h2:50, *:h3:20:10; default none).
    On {
        #[arg(long)]
        delay: Vec<String>,
        /// Seed of the jitter (the same seed, the same delays).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// JSON lines of every piece relayed (a new file).
        #[arg(long)]
        record: Option<std::path::PathBuf>,
    },
    /// Stop it: the links are direct again.
    Off,
    /// A record as a sequence chart across hosts: a line per piece (read, due, who to whom),
    /// and with --svg a lifeline per process, each piece an arrow slanted by its delay.
    Chart {
        record: std::path::PathBuf,
        #[arg(long)]
        svg: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum Cmd {
    /// The labs, with the questions they answer.
    List,
    /// Run lab N's narrated walkthrough.
    Lab {
        n: u32,
        /// Pause after each step, while what it shows is live, until Enter.
        #[arg(long)]
        step: bool,
        /// Print the lab's text (its README: questions answered, grading contract) instead.
        #[arg(long)]
        text: bool,
        /// Language of the text: en or fr (default: fr when LANG starts with fr).
        #[arg(long, value_enum)]
        lang: Option<ipclab::lang::Lang>,
        /// A machine file (one hostname a line): the steps on other machines run there over
        /// ssh (lab 9), the programs at the same path (a shared home, as in the TP room).
        #[arg(long, value_name = "FILE")]
        hosts: Option<std::path::PathBuf>,
    },
    /// What works on this machine: /dev/shm, FIFOs, subreaper, pidfd, strace. Exit 3 if a lab cannot run.
    Doctor,
    /// Grade an implementation of lab N (or the references of every lab: all).
    Grade {
        /// Lab number, or all.
        lab: String,
        /// The implementation's command, split shell-style (default: the reference programs).
        #[arg(long = "impl", value_name = "CMD")]
        impl_cmd: Option<String>,
        /// Runs, each with fresh parameters derived from the seed.
        #[arg(long, default_value_t = 1)]
        runs: u32,
        /// Seed of the random parameters (printed in every report).
        #[arg(long)]
        seed: Option<u64>,
        /// Wall-clock limit per run in seconds (default: the lab's time budget).
        #[arg(long)]
        timeout: Option<f64>,
        /// Perturb the interleaving with seeded random delays (LD_PRELOAD shim).
        #[arg(long)]
        race: bool,
        /// Report format; repeat with --output to write several.
        #[arg(long, value_enum)]
        format: Vec<ipclab::grade::Format>,
        /// File for the matching --format (default stdout).
        #[arg(long)]
        output: Vec<std::path::PathBuf>,
        /// Track the process tree by /proc sampling only (to test the fallback).
        #[arg(long, hide = true)]
        no_ptrace: bool,
        /// A class: grade every subdirectory of DIR (entry: run, main.py, main.c or Cargo.toml).
        #[arg(long, value_name = "DIR")]
        submissions: Option<std::path::PathBuf>,
        /// Submissions graded at once with --submissions.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// With --submissions: where reports and transcripts go (default: DIR-results beside DIR).
        #[arg(long, value_name = "DIR")]
        results: Option<std::path::PathBuf>,
        /// A leased box uid held by the calling ipclab (batch grading gives each job its own).
        #[arg(long, hide = true)]
        uid: Option<u32>,
        /// A directory to hide from the box besides the checkout (batch: the class, the results).
        #[arg(long, hide = true)]
        hide: Vec<std::path::PathBuf>,
        /// Language of the checks' messages: en or fr (default: fr when LANG starts with fr).
        /// Check names, OK/FAIL/SKIP and the Score line stay as they are, for scripts.
        #[arg(long, value_enum)]
        lang: Option<ipclab::lang::Lang>,
        /// Refused, with the reason: grading runs on this machine (local processes, or
        /// namespace hosts); `ipclab lab N --hosts FILE` runs the steps on real machines.
        #[arg(long, value_name = "FILE")]
        hosts: Option<std::path::PathBuf>,
    },
    /// Run lab N's reference (or --impl) under strace, as its contract runs it; print the trace
    /// normalised (roles, DIR, masked addresses, times in ms) and save it under target/trace/.
    Trace {
        n: u32,
        /// The implementation's command, split shell-style (default: the reference programs).
        #[arg(long = "impl", value_name = "CMD")]
        impl_cmd: Option<String>,
        /// A contract parameter's value, e.g. N=7 (default: the spec's trace value, or its min).
        #[arg(long, value_name = "K=V", value_parser = key_value)]
        set: Vec<(String, u64)>,
        /// Print strace's own lines, one block per process file.
        #[arg(long)]
        raw: bool,
        /// Also draw the message sequence chart as SVG.
        #[arg(long, value_name = "FILE")]
        svg: Option<std::path::PathBuf>,
        /// Print the chart as text lines too.
        #[arg(long)]
        chart: bool,
        /// Compare with the lab's strace.expected: exit 1 if a key line is missing.
        #[arg(long)]
        check: bool,
    },
    /// Lab 7: every IPC mechanism measured between two processes (round trip, stream, CPU).
    Bench {
        /// Mechanisms to measure (default: all sixteen).
        #[arg(long = "mechanism", value_name = "M")]
        mechanisms: Vec<String>,
        /// Message sizes in bytes, 1..=65536.
        #[arg(long = "size", value_name = "BYTES", default_values_t = [1usize, 64, 4096, 65536])]
        sizes: Vec<usize>,
        /// Timed round trips per mechanism and size (and messages in the stream, up to 20000).
        #[arg(long, value_name = "K", default_value_t = 10_000)]
        round_trips: u64,
        /// CPU placement: both on CPU 0, on CPUs 0 and 1, or free.
        #[arg(long, value_enum, default_value = "none")]
        pin: ipclab::zoo::Pin,
        #[arg(long, value_enum, default_value = "text")]
        format: ipclab::zoo::Format,
        /// Also draw the median round trips as an SVG bar chart (log scale).
        #[arg(long, value_name = "FILE")]
        svg: Option<std::path::PathBuf>,
        /// Check every byte of every message, not only its sequence number.
        #[arg(long)]
        verify: bool,
        /// Run the C twins (built from bench/twins.c) beside their Rust counterparts.
        #[arg(long, value_name = "TWINS")]
        compare_c: Option<std::path::PathBuf>,
        /// Interleaved Rust/C pairs per mechanism with --compare-c.
        #[arg(long, default_value_t = 5)]
        pairs: u32,
        /// Leave out the cost of starting a process (fork, exec, posix_spawn).
        #[arg(long)]
        no_process_costs: bool,
    },
    /// Pack the grader of lab N for Gradescope (an autograder zip) or GitHub Classroom (a workflow).
    Package {
        target: ipclab::package::Target,
        n: u32,
        /// The zip (gradescope) or the directory to write into (classroom; default: here).
        #[arg(long)]
        output: Option<std::path::PathBuf>,
        /// Statically linked binaries (`make static`); default: beside this ipclab.
        #[arg(long)]
        bin_dir: Option<std::path::PathBuf>,
        /// Graded runs per submission.
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// Accept dynamically linked binaries (tests of the scripts).
        #[arg(long, hide = true)]
        allow_dynamic: bool,
    },
    /// A student's starter for lab N: the contract's arguments parsed, TODO(labN.k) stubs to fill.
    New {
        n: u32,
        #[arg(long, value_enum)]
        lang: ipclab::kit::Lang,
        /// Where to write it (default: labN-LANG); must not exist or be empty.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
    /// Batch grading's compiler, in a box of a uid the calling ipclab holds (not for users).
    #[command(hide = true)]
    BuildC {
        #[arg(long)]
        uid: u32,
        #[arg(long)]
        dir: std::path::PathBuf,
        #[arg(long)]
        hide: Vec<std::path::PathBuf>,
    },
    /// Hosts on this machine for the distributed labs: network namespaces h1..hK on a bridge,
    /// each with its own user and sshd, so `ssh h2 "cd DIR; ./prog"` works between them (root).
    Hosts {
        #[command(subcommand)]
        cmd: HostsCmd,
    },
    /// The TCP segments of PORT crossing this network namespace, one line each (needs
    /// CAP_NET_RAW: root, or inside a namespace of your own); what lab 8 draws.
    Capture {
        #[arg(long)]
        port: u16,
        /// Stop once a connection has ended (a FIN each way and the last ACK, or a reset).
        #[arg(long)]
        until_closed: bool,
    },
    /// The live process tree under PID (default: the whole machine, from PID 1), with each
    /// process's state; zombies say who has not reaped them (in red on a terminal).
    Ps { pid: Option<i32> },
    /// Remove what dead ipclab processes left: this user's /dev/shm/ipclab-UID-PID-* objects and
    /// grading scratch; as root also boxes, leases' leftovers and cgroups of dead graders.
    Clean,
}

/// `ipclab lab N --text`: the lab's README, so a kit made anywhere can show it.
fn lab_text(n: u32, lang: ipclab::lang::Lang) -> Result<i32> {
    let spec = ipclab::spec::find(n)?;
    let name = match lang {
        ipclab::lang::Lang::Fr => "README.fr.md",
        ipclab::lang::Lang::En => "README.md",
    };
    let text = ipclab::spec::file(&spec.dir_name(), name)
        .ok_or_else(|| Error::runtime(format!("lab {n} has no {name}")))?;
    ipclab::walkthrough::out(text);
    Ok(0)
}

fn main() {
    ipclab::sandbox::mark("start");
    let cli: Cli = ipclab::args::parse();
    let result = match cli.cmd {
        Cmd::List => list(),
        Cmd::Lab {
            n,
            step,
            text,
            lang,
            hosts,
        } => {
            let lang = ipclab::lang::Lang::choose(lang);
            if text {
                ipclab::labs::find(n).and_then(|_| lab_text(n, lang))
            } else {
                ipclab::labs::find(n)
                    .and_then(|l| ipclab::walkthrough::run(l, step, lang, hosts.as_deref()))
            }
        }
        Cmd::Doctor => Ok(doctor()),
        Cmd::Clean => Ok(clean()),
        Cmd::Ps { pid } => ps(pid.unwrap_or(1)),
        Cmd::Capture { port, until_closed } => ipclab::wire::capture(port, until_closed),
        Cmd::BuildC { uid, dir, hide } => ipclab::grade::batch::build_c(&dir, uid, &hide),
        Cmd::Hosts { cmd } => hosts(cmd),
        Cmd::New { n, lang, dir } => ipclab::kit::new(n, lang, dir),
        Cmd::Package {
            target,
            n,
            output,
            bin_dir,
            runs,
            allow_dynamic,
        } => ipclab::package::package(&ipclab::package::Options {
            target,
            lab: n,
            output,
            bin_dir,
            runs,
            allow_dynamic,
        }),
        Cmd::Bench {
            mechanisms,
            sizes,
            round_trips,
            pin,
            format,
            svg,
            verify,
            compare_c,
            pairs,
            no_process_costs,
        } => ipclab::zoo::bench(&ipclab::zoo::Options {
            mechanisms,
            sizes,
            round_trips,
            pin,
            format,
            svg,
            verify,
            compare_c,
            pairs,
            process_costs: !no_process_costs,
        }),
        Cmd::Trace {
            n,
            impl_cmd,
            set,
            raw,
            svg,
            chart,
            check,
        } => ipclab::labs::find(n).and_then(|l| {
            let o = ipclab::trace::Options {
                lab: n,
                impl_cmd,
                set,
                raw,
                svg,
                chart,
                check,
                quiet: false,
                out_dir: std::path::PathBuf::from("target/trace"),
            };
            ipclab::trace::trace(&o, l)
        }),
        Cmd::Grade {
            lab,
            impl_cmd,
            runs,
            seed,
            timeout,
            race,
            format,
            output,
            no_ptrace,
            submissions,
            jobs,
            results,
            uid,
            hide,
            lang,
            hosts,
        } => refuse_hosts(&lab, hosts.as_deref())
            .and_then(|()| pair_outputs(format, output))
            .and_then(|outputs| {
                ipclab::lang::set(ipclab::lang::Lang::choose(lang));
                let o = ipclab::grade::Options {
                    lab,
                    impl_cmd,
                    runs,
                    seed,
                    timeout,
                    race,
                    outputs,
                    no_ptrace,
                    uid,
                    submissions,
                    jobs,
                    results,
                    hide,
                };
                ipclab::grade::grade(&o, &ipclab::labs::gradable())
            }),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => exit_with(&e),
    }
}

/// `grade --hosts FILE`: the grader boxes what it judges, which it can do only here.
fn refuse_hosts(lab: &str, hosts: Option<&std::path::Path>) -> Result<()> {
    match hosts {
        None => Ok(()),
        Some(f) => Err(Error::usage(format!(
            "grade --hosts {}: a program is judged in a box of this machine (its process tree, \
             uids, sockets, files), which ssh to other machines cannot give: grade here or on \
             namespace hosts (ipclab hosts up); ipclab lab {lab} --hosts {} runs the steps there",
            f.display(),
            f.display()
        ))),
    }
}

/// `--format a --output x --format b --output y`: formats and files pair in order; formats
/// without a file go to stdout; a file without a format is an error.
fn hosts(cmd: HostsCmd) -> Result<i32> {
    use ipclab::hosts::Cluster;
    let none = || Error::usage("no hosts are up: ipclab hosts up K");
    match cmd {
        HostsCmd::Up { k, race } => {
            let race = match race {
                Some(seed) => Some(ipclab::hosts::Race {
                    seed,
                    shim: ipclab::grade::race_library()?,
                }),
                None => None,
            };
            // An interrupt while the hosts are made (under a second) is taken once they are:
            // then everything goes, as if up had never run.
            ipclab::signals::watch_interrupts()?;
            let c = Cluster::up(k, race.as_ref())?;
            if let Some(sig) = ipclab::signals::interrupted() {
                Cluster::down()?;
                return Err(Error::runtime(format!(
                    "{} received: the hosts were removed",
                    sig.as_str()
                ))
                .with_code(128 + sig as i32));
            }
            for h in &c.hosts {
                println!(
                    "{}\t{}\tuser {}\tsshd pid {}",
                    h.name,
                    h.addr,
                    h.user,
                    h.sshd_pid().unwrap_or(0)
                );
            }
            if let Some(r) = &race {
                println!(
                    "race: every program started over ssh is perturbed (seed {}); ipclab hosts \
                     perturbed lists them",
                    r.seed
                );
            }
            println!("try: ipclab hosts exec h1 -- ssh h2 hostname");
            Ok(0)
        }
        HostsCmd::Down => {
            let gone = Cluster::down()?;
            if gone.is_empty() {
                println!("no hosts were up");
            } else {
                println!("removed {}", gone.join(" "));
            }
            Ok(0)
        }
        HostsCmd::List => {
            let c = Cluster::current().ok_or_else(none)?;
            print!("{}", c.machine_file());
            Ok(0)
        }
        HostsCmd::Faults {
            seed,
            count,
            gap_ms,
            kinds,
            on,
            plan_only,
            replay,
        } => {
            let c = Cluster::current().ok_or_else(none)?;
            let hosts = if on.is_empty() { c.names() } else { on };
            for h in &hosts {
                c.host(h)?;
            }
            let plan = match replay {
                Some(f) => {
                    let text = std::fs::read_to_string(&f)
                        .map_err(|e| Error::usage(format!("--replay {}: {e}", f.display())))?;
                    ipclab::faults::read_plan(&text)?
                }
                None => {
                    use ipclab::faults::Kind;
                    let kinds = if kinds.is_empty() {
                        vec![Kind::Pause, Kind::Crash, Kind::Partition, Kind::Restart]
                    } else {
                        kinds
                    };
                    ipclab::faults::plan(seed, &hosts, &kinds, count, gap_ms)
                }
            };
            if plan_only {
                for f in &plan {
                    println!("{}", serde_json::to_string(f).unwrap_or_default());
                }
                return Ok(0);
            }
            ipclab::faults::run(&c, &plan, &mut |a| {
                println!("{}", serde_json::to_string(a).unwrap_or_default())
            })?;
            Ok(0)
        }
        HostsCmd::Partition { a, b } => {
            let c = Cluster::current().ok_or_else(none)?;
            let split = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
            c.partition(&split(&a), &split(&b))?;
            Ok(0)
        }
        HostsCmd::Heal => {
            Cluster::current().ok_or_else(none)?.heal()?;
            Ok(0)
        }
        HostsCmd::Relay {
            cmd:
                RelayCmd::On {
                    delay,
                    seed,
                    record,
                },
        } => {
            let c = Cluster::current().ok_or_else(none)?;
            let links = delay
                .iter()
                .map(|d| ipclab::relay::Link::parse(d))
                .collect::<Result<Vec<_>>>()?;
            let pid = ipclab::relay::on(
                &c,
                ipclab::relay::Config {
                    links,
                    seed,
                    record,
                },
            )?;
            println!("relay {pid}: TCP between the hosts goes through it (ipclab hosts relay off)");
            Ok(0)
        }
        HostsCmd::Relay {
            cmd: RelayCmd::Chart { record, svg },
        } => {
            let text = std::fs::read_to_string(&record)
                .map_err(|e| Error::io(&e, "read", record.display()).into_usage())?;
            let pieces = ipclab::trace::relay::pieces(&text)
                .map_err(|e| Error::usage(format!("{}: {e}", record.display())))?;
            print!("{}", ipclab::trace::relay::text(&pieces));
            if let Some(out) = svg {
                let title = format!("relay record {}", record.display());
                std::fs::write(&out, ipclab::trace::relay::svg(&pieces, &title))
                    .map_err(|e| Error::io(&e, "write", out.display()))?;
                println!("chart: {}", out.display());
            }
            Ok(0)
        }
        HostsCmd::Relay { cmd: RelayCmd::Off } => {
            if ipclab::relay::off()? {
                println!("relay stopped: the links are direct");
            } else {
                println!("no relay was running");
            }
            Ok(0)
        }
        HostsCmd::Perturbed => {
            let c = Cluster::current().ok_or_else(none)?;
            if c.race_seed().is_none() {
                return Err(Error::usage(
                    "no race injection on these hosts: ipclab hosts up K --race SEED",
                ));
            }
            // A normal user's hosts share one home, so one log; read once each. The log is
            // the hosts' users' file: read without following a link they could plant.
            let mut logs: Vec<std::path::PathBuf> =
                c.hosts.iter().map(ipclab::hosts::race_log).collect();
            logs.sort();
            logs.dedup();
            for log in logs {
                if let Some(text) = ipclab::grade::checks::read_box_file(&log, 1 << 20) {
                    print!("{text}");
                }
            }
            Ok(0)
        }
        HostsCmd::Links => {
            let c = Cluster::current().ok_or_else(none)?;
            let mut pids = Vec::new();
            let mut names = Vec::new();
            for h in &c.hosts {
                for p in ipclab::faults::processes(h) {
                    let Some(name) = ipclab::inspect::ns_name(p) else {
                        continue;
                    };
                    pids.push(p);
                    names.push(format!("{} {name}", h.name));
                }
            }
            let links = ipclab::inet::tcp_links(&pids);
            // Only the programs with a connection to another: shells and idle ones aside.
            let mut linked: Vec<usize> = links.iter().flat_map(|(a, b)| [*a, *b]).collect();
            linked.sort_unstable();
            linked.dedup();
            for (a, b) in &links {
                println!("{} <-> {}", names[*a], names[*b]);
            }
            if linked.len() < 3 {
                println!("{} program(s) connected: no ring", linked.len());
                return Ok(0);
            }
            let sub: Vec<String> = linked.iter().map(|i| names[*i].clone()).collect();
            let at = |i: usize| linked.iter().position(|x| *x == i).unwrap_or(0);
            let sub_links: Vec<(usize, usize)> =
                links.iter().map(|(a, b)| (at(*a), at(*b))).collect();
            match ipclab::grade::props::ring(&sub, &sub_links) {
                Ok(order) => {
                    let mut walk: Vec<&str> = order.iter().map(|i| sub[*i].as_str()).collect();
                    walk.push(&sub[order[0]]);
                    println!("one ring of {}: {}", sub.len(), walk.join(" - "));
                }
                Err(why) => println!("not one ring: {why}"),
            }
            Ok(0)
        }
        HostsCmd::Exec { host, cmd } => {
            let c = Cluster::current().ok_or_else(none)?;
            let argv = if cmd.is_empty() {
                vec!["/bin/sh".to_string()]
            } else {
                cmd
            };
            let status = c
                .exec(&host, &argv)?
                .status()
                .map_err(|e| Error::io(&e, "exec", &argv[0]).with_code(3))?;
            Ok(status.code().unwrap_or_else(|| {
                use std::os::unix::process::ExitStatusExt;
                128 + status.signal().unwrap_or(0)
            }))
        }
    }
}

fn pair_outputs(
    formats: Vec<ipclab::grade::Format>,
    outputs: Vec<std::path::PathBuf>,
) -> Result<Vec<(ipclab::grade::Format, Option<std::path::PathBuf>)>> {
    if outputs.len() > formats.len().max(1) {
        return Err(Error::usage(
            "more --output than --format: give a --format for each --output",
        ));
    }
    let formats = if formats.is_empty() {
        vec![ipclab::grade::Format::Text]
    } else {
        formats
    };
    let mut outs = outputs.into_iter();
    Ok(formats.into_iter().map(|f| (f, outs.next())).collect())
}

/// `K=V` with V a number.
fn key_value(s: &str) -> std::result::Result<(String, u64), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: want NAME=NUMBER"))?;
    let v = v
        .parse()
        .map_err(|_| format!("{s:?}: {v:?} is not a number"))?;
    Ok((k.to_string(), v))
}

fn ps(root: i32) -> Result<i32> {
    if ipclab::inspect::info(root).is_none() {
        return Err(Error::usage(format!("ps {root}: no such process")));
    }
    println!("PID S COMMAND (the tree under {root})");
    for l in ipclab::inspect::tree(root, &[], ipclab::inspect::color_wanted()) {
        println!("{l}");
    }
    Ok(0)
}

fn list() -> Result<i32> {
    for l in ipclab::labs::ALL {
        let s = l.spec()?;
        println!("lab {}  {:<9} {}", s.lab.number, s.lab.name, s.lab.title);
        println!("        programs: {}", s.lab.binaries.join(", "));
        for q in &s.lab.questions {
            println!("        {q}");
        }
    }
    Ok(0)
}

fn doctor() -> i32 {
    let findings = ipclab::doctor::examine();
    for f in &findings {
        println!("{:<4} {}", f.level, f.what);
    }
    if findings.iter().any(|f| f.level == "FAIL") {
        3
    } else {
        0
    }
}

/// Only names this toolkit makes (`ipclab-<uid>-<pid>-<hex>`), only ours, only if that pid is gone.
fn clean() -> i32 {
    let mut removed = 0;
    for (path, pid, r) in ipclab::shm::remove_orphaned("ipclab", &[], false) {
        match r {
            Ok(()) => {
                println!("removed {path} (creator {pid} is gone)");
                removed += 1;
            }
            Err(e) => eprintln!("{e}"),
        }
    }
    for line in ipclab::sandbox::sweep() {
        println!("{line}");
        removed += 1;
    }
    println!("clean: {removed} object(s) removed");
    0
}
