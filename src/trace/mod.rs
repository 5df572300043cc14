//! `ipclab trace N`: a lab's reference — or a student's program, any language — run under
//! strace as its grading contract runs it, one trace file per process, then normalised so it
//! reads line by line beside the lab's README (see `parse`), checked against the lab's
//! `strace.expected` (`expected`), and drawn as a message sequence chart (`chart`).

pub mod chart;
pub mod expected;
pub mod parse;
pub mod relay;
pub mod wire;

use crate::error::{Error, Result};
use parse::{Normaliser, Trace};
use std::collections::BTreeMap;
use std::path::PathBuf;
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

/// A trace's parameters (the contract's, at their `trace` values), by name.
pub type Params = BTreeMap<String, u64>;

/// A lab as `ipclab trace` sees it: who its roles are and what to run under strace.
pub trait Traceable: crate::spec::Folder {
    /// Root role names, in the order the scenario starts them.
    fn roots(&self) -> &'static [&'static str] {
        &["main"]
    }
    /// Children's role names by birth order, for a parent of role `role`.
    fn children(&self, _role: &str, _params: &Params) -> Vec<String> {
        Vec::new()
    }
    /// A lab with no grading contract is traced with this one (lab 7: a short bench).
    fn contract(&self) -> Option<crate::spec::Contract> {
        None
    }
    /// What runs under strace (default: main once, to its end).
    fn scenario(&self, t: &Tracer, run: &TraceRun) -> Result<()> {
        t.run(&run.argv("")).map(|_| ())
    }
}

/// What a trace scenario is given.
pub struct TraceRun<'a> {
    argv: &'a dyn Fn(&str) -> Vec<String>,
    /// The contract's DIR and `{EVENTS}` file.
    pub dir: PathBuf,
    pub events: PathBuf,
    pub params: &'a BTreeMap<String, u64>,
    /// The reference is traced (not an implementation).
    pub reference: bool,
}

impl TraceRun<'_> {
    /// main's command line, `{ACTION}` being `action`.
    pub fn argv(&self, action: &str) -> Vec<String> {
        (self.argv)(action)
    }
    pub fn param(&self, k: &str) -> u64 {
        self.params.get(k).copied().unwrap_or(0)
    }
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
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Why strace cannot be used here, if it cannot.
pub fn strace_usable() -> std::result::Result<String, String> {
    let v = Command::new("strace")
        .arg("-V")
        .output()
        .map_err(|_| "strace is not installed (apt-get install strace)".to_string())?;
    let version = String::from_utf8_lossy(&v.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let probe = Command::new("strace")
        .args(["-qq", "-e", "trace=none", "-o", "/dev/null", "true"])
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| e.to_string())?;
    if !probe.status.success() {
        let err = String::from_utf8_lossy(&probe.stderr);
        return Err(format!(
            "strace cannot trace here ({}): ptrace is not permitted; give the container SYS_PTRACE (docker run --cap-add SYS_PTRACE) or lower kernel.yama.ptrace_scope to 1 (3 needs a reboot)",
            err.lines().next().unwrap_or("").trim()
        ));
    }
    Ok(version)
}

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

/// Traces `lab` (`o.lab` is its number).
pub fn trace(o: &Options, lab: &dyn Traceable) -> Result<i32> {
    let s = lab.spec()?;
    let c = match (&s.contract, lab.contract()) {
        (Some(c), _) => c.clone(),
        (None, Some(c)) if o.impl_cmd.is_none() => c,
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
    if let Err(why) = strace_usable() {
        return Err(Error::usage(why));
    }
    let (program, args, shown) = if s.contract.is_none() {
        let p = crate::process::sibling_binary("ipclab")?;
        // No contract: the lab's scenario starts its own programs (lab 7: `ipclab bench`).
        (p, Vec::new(), "its reference programs".to_string())
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
        sent: Default::default(),
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
    let run = TraceRun {
        argv: &contract_args,
        dir: scratch.dir(),
        events: events.clone(),
        params: &params,
        reference: o.impl_cmd.is_none(),
    };
    let scenario = lab.scenario(&tracer, &run);
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
    t.name_roles(lab.roots(), &|role| lab.children(role, &params));
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
    let mut chart = chart::Chart::new(&t, &norm);
    chart.sent_by_ipclab(&tracer.sent.lock().unwrap_or_else(|e| e.into_inner()));
    // Heartbeats logged in the event log (CLOCK_MONOTONIC ms), placed on strace's clock
    // (CLOCK_REALTIME, -ttt) by the offset between the two clocks now.
    let offset = {
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // Safety: clock_gettime writes into the timespec we own.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        real - (ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
    };
    let beats: Vec<(i32, f64)> = crate::evlog::Log::read(&events)
        .named("beat")
        .filter_map(|e| Some((e.pid? as i32, e.ts_ms? as f64 / 1e3 + offset)))
        .collect();
    chart.add_beats(&beats);
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

/// Runs programs under strace, one trace file per process, their output appended to `log`.
pub struct Tracer {
    /// Trace files are `base.PID`.
    pub base: PathBuf,
    filter: String,
    /// The programs' cwd (beside it: `dir`, the contract's DIR).
    pub cwd: PathBuf,
    /// The programs' stdout and stderr, appended.
    log: PathBuf,
    /// Signals the scenario sent (pid, name): the chart names ipclab as their sender.
    sent: std::sync::Mutex<Vec<(i32, String)>>,
}

impl Tracer {
    /// Sends `sig` to `pid` from the scenario, and remembers it for the chart (a SIGKILL shows
    /// no `--- SIG ---` line in the trace: without this nothing would say who sent it).
    pub fn signal(&self, pid: i32, sig: nix::sys::signal::Signal) -> Result<()> {
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((pid, sig.as_str().to_string()));
        crate::process::signal(nix::unistd::Pid::from_raw(pid), sig)
    }

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

    pub fn spawn(&self, argv: &[String]) -> Result<Child> {
        let _starting = crate::process::spawning();
        self.command(argv)?
            .spawn()
            .map_err(|e| Error::io(&e, "exec", "strace"))
    }

    /// Runs to the end; the traced program's exit status.
    pub fn run(&self, argv: &[String]) -> Result<i32> {
        let mut child = self.spawn(argv)?;
        wait_child(&mut child, PATIENCE * 2)
    }
}

pub fn wait_child(child: &mut Child, limit: Duration) -> Result<i32> {
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
pub fn tracee(strace: &Child) -> Option<i32> {
    let pid = strace.id();
    let main = procfs::process::Process::new(pid as i32)
        .ok()?
        .task_main_thread()
        .ok()?;
    main.children().ok()?.first().map(|c| *c as i32)
}

/// Re-reads `what` every 20 ms until `ok` holds: the program announces its state there.
pub fn until<T>(what: &str, mut ok: impl FnMut() -> Option<T>) -> Result<T> {
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
