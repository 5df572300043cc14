//! `ipclab trace N`: a lab's reference — or a student's program, any language — run under
//! strace as its grading contract runs it, one trace file per process, then normalised so it
//! reads line by line beside the lab's README (see `parse`), checked against the lab's
//! `strace.expected` (`expected`), and drawn as a message sequence chart (`chart`).

pub mod chart;
pub mod expected;
pub mod parse;

use crate::error::{Error, Result};
use crate::spec;
use parse::{Normaliser, Trace};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Options {
    pub lab: u32,
    pub impl_cmd: Option<String>,
    /// Parameter overrides (`--set N=7`).
    pub set: Vec<(String, u64)>,
    /// Print strace's own lines instead of the normalised ones.
    pub raw: bool,
    pub svg: Option<PathBuf>,
    /// Compare with labs/labN-*/strace.expected; exit 1 if a key line is missing.
    pub check: bool,
    /// Print the chart as text lines after the trace.
    pub chart: bool,
    /// Print only the chart (and where the trace was saved), not the trace itself.
    pub quiet: bool,
    /// Where the normalised trace (and raw files) are saved.
    pub out_dir: PathBuf,
}

/// Calls always traced, whatever the lab's filter: the tree and the roles are built from them.
const TREE: &[&str] = &[
    "clone",
    "clone3",
    "fork",
    "vfork",
    "execve",
    "wait4",
    "waitid",
    "kill",
    "exit_group",
];

/// Longest a scenario waits for the program to reach a state (a safety net, not a pace).
const PATIENCE: Duration = Duration::from_secs(30);

/// A traced run's scratch: trace files, DIR, the program's cwd.
struct Scratch {
    top: tempfile::TempDir,
}

impl Scratch {
    fn base(&self) -> PathBuf {
        self.top.path().join("strace")
    }
    fn dir(&self) -> PathBuf {
        self.top.path().join("dir")
    }
    fn cwd(&self) -> PathBuf {
        self.top.path().join("cwd")
    }
}

pub fn trace(o: &Options) -> Result<i32> {
    let s = spec::find(o.lab)?;
    // Lab 7 has no grading contract: its trace is one short bench of a pipe.
    let c = match (&s.contract, o.lab) {
        (Some(c), _) => c.clone(),
        (None, 7) if o.impl_cmd.is_none() => crate::spec::Contract {
            memory_mb: 2048,
            file_size_mb: 64,
            box_mb: 256,
            args: [
                "bench",
                "--mechanism",
                "pipe",
                "--size",
                "8",
                "--round-trips",
                "3",
                "--no-process-costs",
            ]
            .map(String::from)
            .to_vec(),
            stdout: String::new(),
            time_budget_ms: 30_000,
            zombie_grace_ms: 0,
            linger_ms: 0,
            max_procs: 8,
            output_cap_bytes: 0,
            supervisor: None,
            roles: Vec::new(),
            params: Default::default(),
            points: Default::default(),
        },
        _ => {
            return Err(Error::usage(format!(
                "lab {} has no contract to run{}",
                o.lab,
                if o.impl_cmd.is_some() {
                    " an implementation with"
                } else {
                    ""
                }
            )))
        }
    };
    for (k, _) in &o.set {
        if !c.params.contains_key(k) {
            let known: Vec<&str> = c.params.keys().map(|s| s.as_str()).collect();
            return Err(Error::usage(format!(
                "--set {k}: lab {} has no parameter {k} (it has: {})",
                o.lab,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
    }
    if let Err(why) = crate::walkthrough::strace_usable() {
        return Err(Error::usage(why));
    }
    let (program, args, shown) = if s.contract.is_none() {
        let p = crate::process::sibling_binary("ipclab")?;
        (p, Vec::new(), "ipclab bench".to_string())
    } else {
        crate::grade::command_for(&c, &s, o.impl_cmd.as_deref())?
    };
    crate::process::set_child_subreaper()?;
    let top = tempfile::Builder::new()
        .prefix("ipclab-trace-")
        .tempdir()
        .map_err(|e| Error::io(&e, "mkdir", "/tmp/ipclab-trace-*"))?;
    let scratch = Scratch { top };
    for d in [scratch.base(), scratch.dir(), scratch.cwd()] {
        std::fs::create_dir(&d).map_err(|e| Error::io(&e, "mkdir", d.display()))?;
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| Error::io(&e, "chmod", d.display()))?;
    }
    let mut params: BTreeMap<String, u64> = c
        .params
        .iter()
        .map(|(k, r)| (k.clone(), r.trace.unwrap_or(r.min)))
        .collect();
    for (k, v) in &o.set {
        let r = c.params[k];
        if *v < r.min || *v > r.max {
            return Err(Error::usage(format!(
                "--set {k}={v}: out of the contract's range {}..={}",
                r.min, r.max
            )));
        }
        params.insert(k.clone(), *v);
    }
    let events = scratch.cwd().join("events.jsonl");
    let contract_args = |action: &str| -> Vec<String> {
        let mut argv = vec![program.display().to_string()];
        argv.extend(args.iter().cloned());
        for a in &c.args {
            let mut a = a
                .replace("{DIR}", &scratch.dir().display().to_string())
                .replace("{EVENTS}", &events.display().to_string())
                .replace("{P}", "ipclab-trace")
                .replace("{ACTION}", action);
            for (k, v) in &params {
                a = a.replace(&format!("{{{k}}}"), &v.to_string());
            }
            argv.push(a);
        }
        argv
    };
    let mut filter: Vec<&str> = s.lab.strace_filter.iter().map(|x| x.as_str()).collect();
    for t in TREE {
        if !filter.contains(t) {
            filter.push(t);
        }
    }
    let tracer = Tracer {
        base: scratch.base().join("t"),
        filter: format!("trace={}", filter.join(",")),
        cwd: scratch.cwd(),
        log: scratch.top.path().join("output.txt"),
    };
    let say = |m: String| {
        if !o.quiet {
            eprintln!("{m}");
        }
    };
    say(format!(
        "tracing lab {} ({shown}) with strace; its output goes to {}",
        o.lab,
        o.out_dir.join(format!("lab{}.out", o.lab)).display()
    ));
    let scenario = match o.lab {
        3 => scenario_lab3(&tracer, &contract_args(""), &events, params["K"] as usize),
        4 => scenario_lab4(&tracer, &contract_args(""), &scratch.dir()),
        6 => scenario_lab6(&tracer, &contract_args),
        // The reference's trace also shows the lab's other two programs.
        5 if o.impl_cmd.is_none() => tracer.run(&contract_args("")).and_then(|_| {
            for (bin, args) in [("zombie", &[][..]), ("orphan", &["--subreaper"][..])] {
                let mut argv = vec![crate::process::sibling_binary(bin)?.display().to_string()];
                argv.extend(args.iter().map(|a| a.to_string()));
                tracer.run(&argv)?;
            }
            Ok(())
        }),
        _ => tracer.run(&contract_args("")).map(|_| ()),
    };
    // Whatever the scenario left (an orphan, a daemon) is ended and reaped before we read.
    for p in crate::inspect::descendants(std::process::id() as i32) {
        let _ = crate::process::signal(
            nix::unistd::Pid::from_raw(p.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = crate::process::reap_children_within(Duration::from_secs(5));
    scenario?;

    let mut t = Trace::read(&scratch.base(), "t").map_err(|e| Error::io(&e, "read", "trace"))?;
    let roots = roots(o.lab);
    let k = params.get("K").copied().unwrap_or(0) as usize;
    let m = params.get("M").copied().unwrap_or(0) as usize;
    t.name_roles(&roots, &|role| children(o.lab, role, k, m));
    let bin_dir = program
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut paths = vec![
        (scratch.dir().display().to_string(), "DIR".to_string()),
        (scratch.cwd().display().to_string(), "CWD".to_string()),
        (tracer.log.display().to_string(), "OUT".to_string()),
    ];
    if o.impl_cmd.is_none() && !bin_dir.is_empty() {
        paths.push((bin_dir, "BIN".to_string()));
    }
    let norm = Normaliser::new(&t, &paths);
    let width = t.procs.values().map(|p| p.role.len()).max().unwrap_or(4);
    // The dynamic loader and interpreters read libraries and modules: noise for this course.
    let (shown, hidden): (Vec<&parse::Event>, Vec<&parse::Event>) =
        t.events.iter().partition(|e| !norm.is_library_noise(e));
    let lines: Vec<String> = shown.iter().map(|e| norm.line(&t, e, width)).collect();

    std::fs::create_dir_all(&o.out_dir).map_err(|e| Error::io(&e, "mkdir", o.out_dir.display()))?;
    let save = |name: String, text: &str| -> Result<PathBuf> {
        let p = o.out_dir.join(name);
        std::fs::write(&p, text).map_err(|e| Error::io(&e, "write", p.display()))?;
        Ok(p)
    };
    let _ = std::fs::copy(&tracer.log, o.out_dir.join(format!("lab{}.out", o.lab)));
    let text = lines.join("\n") + "\n";
    let saved = save(format!("lab{}.txt", o.lab), &text)?;
    let raw_dir = o.out_dir.join(format!("lab{}.raw", o.lab));
    let _ = std::fs::remove_dir_all(&raw_dir);
    std::fs::create_dir_all(&raw_dir).map_err(|e| Error::io(&e, "mkdir", raw_dir.display()))?;
    let mut raw = String::new();
    for f in std::fs::read_dir(scratch.base()).map_err(|e| Error::io(&e, "read", "trace"))? {
        let f = f.map_err(|e| Error::io(&e, "read", "trace"))?;
        let _ = std::fs::copy(f.path(), raw_dir.join(f.file_name()));
        raw.push_str(&format!(
            "== {}\n{}",
            f.file_name().to_string_lossy(),
            std::fs::read_to_string(f.path()).unwrap_or_default()
        ));
    }
    if o.raw {
        print!("{raw}");
    } else if !o.quiet {
        print!("{text}");
    }
    if o.quiet {
        println!("   (the whole trace: {})", saved.display());
    } else {
        println!(
        "-- {} processes, {} lines ({} more on system files hidden: --raw shows them); saved in {} (strace's own files in {})",
        t.procs.len(),
        lines.len(),
        hidden.len(),
        saved.display(),
        raw_dir.display()
    );
    }
    let chart = chart::Chart::new(&t, &norm);
    if o.chart {
        if !o.quiet {
            println!("-- the chart, as text:");
        }
        for l in chart.text().lines() {
            println!("{}{l}", if o.quiet { "   | " } else { "" });
        }
    }
    if let Some(svg) = &o.svg {
        std::fs::write(svg, chart.svg(&format!("lab {}: {}", o.lab, s.lab.title)))
            .map_err(|e| Error::io(&e, "write", svg.display()))?;
        println!(
            "-- sequence chart: {} ({} messages)",
            svg.display(),
            chart.messages.len()
        );
    }
    if o.check {
        let exp = expected::Expected::for_lab(&s)?;
        let missing = exp.check(&t, &norm);
        if !missing.is_empty() {
            for m in &missing {
                println!("MISSING {m}");
            }
            return Ok(1);
        }
        println!(
            "-- every key line of {} is there, in order",
            expected::path_of(&s).display()
        );
    }
    Ok(0)
}

/// Root role names, in the order the scenario starts them.
fn roots(lab: u32) -> Vec<&'static str> {
    match lab {
        1 | 2 => vec!["main"],
        3 => vec!["watchdog"],
        4 => vec!["watchdog", "client"],
        5 => vec!["reaper", "zombie", "orphan"],
        6 => vec!["start", "status", "stop"],
        7 => vec!["bench"],
        _ => vec!["main"],
    }
}

/// Children's role names by birth order, for a parent of role `role`.
fn children(lab: u32, role: &str, k: usize, m: usize) -> Vec<String> {
    let numbered = |name: &str, n: usize| (1..=n).map(|i| format!("{name}-{i}")).collect();
    match (lab, role) {
        (1 | 2, "main") => vec!["secondary".into()],
        (3, "watchdog") => {
            let mut v = vec!["main".to_string()];
            v.extend(numbered("secondary", k));
            v
        }
        (4, "watchdog") => {
            let mut v = vec!["dispatcher".to_string()];
            v.extend(numbered("worker", k));
            v
        }
        (5, "reaper") => numbered("child", m),
        (5, "zombie") => vec!["zombie-child".into()],
        (5, "orphan") => vec!["orphan-child".into()],
        (5, "orphan-child") => vec!["grandchild".into()],
        (6, "start") => vec!["middle".into()],
        (6, "middle") => vec!["daemon".into()],
        (7, "bench") => vec!["peer".into()],
        _ => vec![],
    }
}

struct Tracer {
    base: PathBuf,
    filter: String,
    cwd: PathBuf,
    /// The programs' stdout and stderr, appended.
    log: PathBuf,
}

impl Tracer {
    fn command(&self, argv: &[String]) -> Result<Command> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| Error::io(&e, "open", self.log.display()))?;
        let log2 = log
            .try_clone()
            .map_err(|e| Error::io(&e, "dup", self.log.display()))?;
        let mut cmd = Command::new("strace");
        // One file per process (no <unfinished ...> splits), absolute times, durations, fd
        // paths, whole strings.
        cmd.args(["-ff", "-ttt", "-T", "-yy", "-s", "4096", "-q", "-e"])
            .arg(&self.filter)
            .arg("-o")
            .arg(&self.base)
            .arg("--")
            .args(argv)
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        Ok(cmd)
    }

    fn spawn(&self, argv: &[String]) -> Result<Child> {
        self.command(argv)?
            .spawn()
            .map_err(|e| Error::io(&e, "exec", "strace"))
    }

    /// Runs to the end; the traced program's exit status.
    fn run(&self, argv: &[String]) -> Result<i32> {
        let mut child = self.spawn(argv)?;
        wait_child(&mut child, PATIENCE * 2)
    }
}

fn wait_child(child: &mut Child, limit: Duration) -> Result<i32> {
    use std::os::fd::AsFd;
    // A pidfd becomes readable when the child exits: wait for that, bounded, then reap it
    // (waitpid on this child only: the orphans we adopt are reaped after the scenario).
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let pidfd = crate::process::pidfd_open(pid)?;
    let ended = crate::signals::poll_fds(&[pidfd.as_fd()], Some(limit))?;
    if !ended.first().copied().unwrap_or(false) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(Error::runtime(format!(
            "the traced program did not end within {} s: killed",
            limit.as_secs()
        )));
    }
    let st = child.wait().map_err(|e| Error::io(&e, "wait", "strace"))?;
    Ok(st.code().unwrap_or(128))
}

/// The pid strace started (its only child).
fn tracee(strace: &Child) -> Option<i32> {
    let pid = strace.id();
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Re-reads `what` every 20 ms until `ok` holds: the program announces its state there.
fn until<T>(what: &str, mut ok: impl FnMut() -> Option<T>) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = ok() {
            return Ok(v);
        }
        if start.elapsed() > PATIENCE {
            return Err(Error::runtime(format!(
                "gave up after {} s waiting for {what}",
                PATIENCE.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn events_of(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Lab 3: every server started (K+1 `start` events), the last one SIGKILLed, its restart
/// logged, then SIGTERM to the watchdog (the orderly shutdown).
fn scenario_lab3(t: &Tracer, argv: &[String], events: &Path, k: usize) -> Result<()> {
    let mut strace = t.spawn(argv)?;
    let started = |ev: &[serde_json::Value]| -> Vec<i64> {
        ev.iter()
            .filter(|e| e["event"] == "start")
            .filter_map(|e| e["pid"].as_i64())
            .collect()
    };
    let r = (|| {
        let first = until("every server's start event", || {
            let s = started(&events_of(events));
            (s.len() > k).then_some(s)
        })?;
        let victim = *first.last().unwrap_or(&0);
        // Killed once it has read from DIR (its FIFO): mid-exchange, as the lab shows it.
        let file = t.base.with_extension(victim.to_string());
        let dir = t.cwd.with_file_name("dir").display().to_string();
        until("the server to read from its FIFO", || {
            std::fs::read_to_string(&file)
                .ok()
                .filter(|s| s.lines().any(|l| l.contains(" read(") && l.contains(&dir)))
        })?;
        crate::process::signal(
            nix::unistd::Pid::from_raw(victim as i32),
            nix::sys::signal::Signal::SIGKILL,
        )?;
        until("the killed server's restart", || {
            (started(&events_of(events)).len() > first.len()).then_some(())
        })?;
        let wd = tracee(&strace).ok_or_else(|| Error::runtime("the watchdog is gone"))?;
        crate::process::signal(
            nix::unistd::Pid::from_raw(wd),
            nix::sys::signal::Signal::SIGTERM,
        )
    })();
    let end = wait_child(&mut strace, PATIENCE);
    r.and(end.map(|_| ()))
}

/// Lab 4: the watchdog with its dispatcher and workers; once an untraced client is served, one
/// traced client; then SIGTERM to the watchdog.
fn scenario_lab4(t: &Tracer, argv: &[String], dir: &Path) -> Result<()> {
    let mut strace = t.spawn(argv)?;
    let client = crate::process::sibling_binary("client")?
        .display()
        .to_string();
    let dir_s = dir.display().to_string();
    let r = (|| {
        until("a first client to be served", || {
            Command::new(&client)
                .args(["--dir", &dir_s, "--request", "probe"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .ok()
                .filter(|s| s.success())
        })?;
        let code = t.run(&[
            client.clone(),
            "--dir".into(),
            dir_s.clone(),
            "--request".into(),
            "hello".into(),
        ])?;
        if code != 0 {
            return Err(Error::runtime(format!("the traced client exited {code}")));
        }
        let wd = tracee(&strace).ok_or_else(|| Error::runtime("the watchdog is gone"))?;
        crate::process::signal(
            nix::unistd::Pid::from_raw(wd),
            nix::sys::signal::Signal::SIGTERM,
        )
    })();
    let end = wait_child(&mut strace, PATIENCE);
    r.and(end.map(|_| ()))
}

/// Lab 6: `start` (traced until the daemon ends), `status`, then `stop`.
fn scenario_lab6(t: &Tracer, argv: &dyn Fn(&str) -> Vec<String>) -> Result<()> {
    let mut start = t.spawn(&argv("start"))?;
    let status = argv("status");
    let r = (|| {
        until("the daemon to be running (status exits 0)", || {
            Command::new(&status[0])
                .args(&status[1..])
                .current_dir(&t.cwd)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .ok()
                .filter(|s| s.success())
        })?;
        t.run(&status)?;
        t.run(&argv("stop"))
    })();
    let end = wait_child(&mut start, PATIENCE);
    r.and(end).map(|_| ())
}
