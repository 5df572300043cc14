//! A class graded at once: `ipclab grade N --submissions DIR [--jobs J] [--results R]`. Each
//! subdirectory of DIR is one student's submission. It is first copied into a staging directory
//! we own, without following any symbolic link (openat with O_NOFOLLOW all the way down), so
//! nothing a student planted can make root read, chown or write elsewhere; its entry command is
//! found there by convention (`run`, `main.py`, `main.c`), C built as the job's box uid, then
//! graded by its own `ipclab grade` process — its own box, subreaper and cgroup — under the uid
//! leased for its job slot. Reports, compiler output and transcripts go to R/<student>/, created
//! fresh (O_EXCL) in a directory only we write; the class summary (CSV, JSON) into R.

use crate::error::{Error, Result};
use serde::Serialize;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct BatchOptions {
    pub lab: u32,
    pub dir: PathBuf,
    /// Where reports go: R/<student>/ipclab-report.*, R/class-summary.*.
    pub results: PathBuf,
    pub jobs: usize,
    pub runs: u32,
    pub seed: u64,
    pub timeout: Option<f64>,
}

/// One student's line in the class summary.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub student: String,
    pub score: u32,
    pub max_score: u32,
    pub passed: bool,
    /// Checks that failed in at least one run.
    pub failing: Vec<String>,
    /// Checks that passed in some runs only: "name k/K passed".
    pub flaky: Vec<String>,
    /// Why it could not be graded (no entry point, compile error, harness failure).
    pub error: Option<String>,
    pub entry: String,
    /// What staging did not copy: symbolic links, FIFOs, sockets, devices.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

const REPORT: &str = "ipclab-report";
/// A submission larger than this (or with more files) is not staged.
const STAGE_MAX_BYTES: u64 = 64 << 20;
const STAGE_MAX_FILES: usize = 10_000;

/// Finds the entry point in the staged copy and builds it as `uid`. Ok(command) or Err(why it
/// cannot be graded); a compiler's output is written to `out`.
fn prepare(
    o: &BatchOptions,
    sub: &Path,
    uid: Option<u32>,
    out: &Path,
) -> std::result::Result<(String, String), String> {
    let has = |f: &str| sub.join(f).is_file();
    if has("run") {
        return Ok((sub.join("run").display().to_string(), "run".into()));
    }
    if has("main.py") {
        return Ok((
            format!("/usr/bin/python3 {}", sub.join("main.py").display()),
            "main.py".into(),
        ));
    }
    if has("main.c") {
        let build = sub.join(".ipclab-build");
        std::fs::create_dir(&build).map_err(|e| format!("mkdir {}: {e}", build.display()))?;
        let exe = build.join("main");
        let (ok, log) = match uid {
            // As root: in a box of the slot's uid (the class, the results and the other copies
            // out of sight), by a helper process — this one runs threads, and the box's setup
            // runs between fork and exec.
            Some(u) => build_in_box(o, sub, u)?,
            None => {
                let mut cmd = Command::new("cc");
                cmd.args(["-O2", "-Wall", "-o"])
                    .arg(&exe)
                    .args(c_sources(sub)?)
                    .current_dir(sub)
                    .env_clear()
                    .env("PATH", "/usr/local/bin:/usr/bin:/bin")
                    .env("LANG", "C.UTF-8")
                    .stdin(Stdio::null());
                run_bounded(cmd)?
            }
        };
        if !ok {
            let _ = write_new(&out.join(format!("{REPORT}-compile.txt")), log.as_bytes());
            let first = log
                .lines()
                .find(|l| l.contains("error"))
                .or_else(|| log.lines().rev().find(|l| !l.trim().is_empty()))
                .unwrap_or("")
                .trim();
            return Err(format!("compile error: {first}"));
        }
        return Ok((exe.display().to_string(), "main.c".into()));
    }
    if has("Cargo.toml") {
        // cargo runs a package's build scripts and proc macros: code of the student's, at build
        // time, outside any box. Refused rather than run as root.
        return Err(
            "Rust submissions are not supported in batch mode (cargo would run the \
                    student's build scripts unboxed): submit the built binary as `run`"
                .into(),
        );
    }
    Err("no entry point: give a `run` executable, main.py or main.c".into())
}

/// Every `*.c` of a submission, sorted.
fn c_sources(sub: &Path) -> std::result::Result<Vec<PathBuf>, String> {
    let mut sources: Vec<PathBuf> = std::fs::read_dir(sub)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "c") && p.is_file())
        .collect();
    sources.sort();
    Ok(sources)
}

/// `ipclab build-c --uid U --dir SUB --hide CLASS --hide RESULTS`: (success, compiler output).
fn build_in_box(
    o: &BatchOptions,
    sub: &Path,
    uid: u32,
) -> std::result::Result<(bool, String), String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find ipclab: {e}"))?;
    let mut c = Command::new(me);
    c.args(["build-c", "--uid", &uid.to_string(), "--dir"])
        .arg(sub)
        .arg("--hide")
        .arg(&o.dir)
        .arg("--hide")
        .arg(&o.results)
        .stdin(Stdio::null());
    let res = c
        .output()
        .map_err(|e| format!("cannot run ipclab build-c: {e}"))?;
    let log = String::from_utf8_lossy(&res.stdout).into_owned();
    match res.status.code() {
        Some(0) => Ok((true, log)),
        Some(1) => Ok((false, log)),
        _ => Err(format!(
            "cannot build: {}",
            String::from_utf8_lossy(&res.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .trim()
        )),
    }
}

/// The helper behind `build_in_box`, in its own (single-threaded) ipclab process: cc on every
/// `*.c` of `dir` in a box of the leased `uid` (the caller holds the lease), under the batch
/// compiler's limits; the binary copied to `dir/.ipclab-build/main`. Prints the compiler's
/// output; Ok(0) built, Ok(1) did not.
pub fn build_c(dir: &Path, uid: u32, hide: &[PathBuf]) -> Result<i32> {
    use crate::sandbox::BoxDir;
    crate::signals::watch_interrupts()?;
    crate::process::set_child_subreaper().map_err(|e| e.with_code(3))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| Error::io(&e, "realpath", dir.display()).into_usage())?;
    let cc = PathBuf::from("/usr/bin/cc");
    let mut ctx = super::boxed::Ctx::new(Some(uid), hide)?;
    let sources = c_sources(&dir).map_err(Error::runtime)?;
    let args: Vec<String> = sources.iter().map(|p| p.display().to_string()).collect();
    ctx.expose_command(&cc, &args);
    let b = BoxDir::new(Some(uid), ctx.powers.namespaces, 256)?;
    if b.mounted {
        b.write_identity(&[(uid, super::boxed::box_user(uid))])?;
    }
    let (mounts, _) = ctx.mounts(&b)?;
    let exe = b.cwd().join("main");
    let mut argv = vec![
        "cc".to_string(),
        "-O2".into(),
        "-Wall".into(),
        "-o".into(),
        exe.display().to_string(),
    ];
    argv.extend(args);
    let l = super::harness::Launch {
        program: cc,
        argv,
        env: crate::sandbox::environment(&b.cwd(), &super::boxed::box_user(uid), &[]),
        cwd: b.cwd(),
        run_as: Some((uid, uid)),
        timeout: BUILD_WALL,
        cpu_secs: BUILD_CPU_S,
        output_cap: BUILD_LOG_CAP,
        max_procs: 64,
        watch_dir: None,
        watch_prefix: String::new(),
        zombie_grace: std::time::Duration::from_secs(1),
        linger: std::time::Duration::from_millis(500),
        use_ptrace: false,
        keep_survivors: false,
        run_no: 0,
        netns: ctx.powers.namespaces,
        join_netns: None,
        ipcns: ctx.powers.namespaces,
        user_pid_ns: false,
        mounts,
        file_size: BUILD_FSIZE,
        address_space: Some(BUILD_AS),
        watch_alias: None,
        keep_setuid: false,
    };
    let out = super::harness::run(&l).map_err(|e| Error::runtime(e.0).with_code(3))?;
    if let Some(sig) = out.interrupted {
        return Err(super::interrupted_error(sig));
    }
    let mut log = String::from_utf8_lossy(&out.stderr).into_owned();
    let built = !out.timed_out
        && matches!(
            out.main_status,
            Some(nix::sys::wait::WaitStatus::Exited(_, 0))
        );
    if out.timed_out {
        log.push_str(&format!(
            "\nipclab: the build was killed after {} s (its wall-clock limit)\n",
            BUILD_WALL.as_secs()
        ));
    }
    print!("{log}");
    if !built {
        return Ok(1);
    }
    // Out of the box, never through a link: the compiler made a regular file, or nothing.
    use std::os::unix::fs::OpenOptionsExt;
    let mut from = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&exe)
        .map_err(|e| Error::io(&e, "open", exe.display()).with_code(3))?;
    if !from.metadata().is_ok_and(|m| m.is_file()) {
        return Err(Error::runtime("the compiler's output is not a regular file").with_code(3));
    }
    let dst = dir.join(".ipclab-build").join("main");
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&dst)
        .map_err(|e| Error::io(&e, "create", dst.display()).with_code(3))?;
    std::io::copy(&mut from, &mut to)
        .map_err(|e| Error::io(&e, "copy", dst.display()).with_code(3))?;
    Ok(0)
}

/// The compiler's limits: a source can make it read forever (`#include "/dev/zero"`), allocate
/// without end, or write a huge file; a compile that hits one fails like a compile error.
const BUILD_WALL: std::time::Duration = std::time::Duration::from_secs(120);
const BUILD_CPU_S: u64 = 60;
const BUILD_AS: u64 = 1 << 30;
const BUILD_FSIZE: u64 = 64 << 20;
const BUILD_LOG_CAP: usize = 1 << 20;

/// Runs a build command in its own session under rlimits (CPU, address space, file size, no
/// core), with a wall-clock limit after which its whole process group is killed; stdout is
/// discarded, stderr kept up to a cap. (success, stderr text).
fn run_bounded(mut cmd: Command) -> std::result::Result<(bool, String), String> {
    use std::os::unix::process::CommandExt;
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    // Safety: setsid, setrlimit and prctl are async-signal-safe; nothing is allocated.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            for (r, v) in [
                (libc::RLIMIT_CPU, BUILD_CPU_S),
                (libc::RLIMIT_AS, BUILD_AS),
                (libc::RLIMIT_FSIZE, BUILD_FSIZE),
                (libc::RLIMIT_CORE, 0),
            ] {
                let lim = libc::rlimit {
                    rlim_cur: v,
                    rlim_max: v,
                };
                if libc::setrlimit(r, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot run cc: {e}"))?;
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let mut err = child.stderr.take().ok_or("no stderr pipe")?;
    let deadline = Instant::now() + BUILD_WALL;
    let mut log = Vec::new();
    let mut timed_out = false;
    let mut chunk = [0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ready = crate::signals::poll_fds(&[std::os::fd::AsFd::as_fd(&err)], Some(left))
            .map(|r| r.first() == Some(&true))
            .unwrap_or(false);
        if !ready {
            timed_out = true;
            break;
        }
        match std::io::Read::read(&mut err, &mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let keep = BUILD_LOG_CAP.saturating_sub(log.len()).min(n);
                log.extend_from_slice(&chunk[..keep]);
            }
        }
    }
    // The whole group: cc's own children (cc1, as, ld) too.
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    let st = child.wait().map_err(|e| format!("wait for cc: {e}"))?;
    let mut text = String::from_utf8_lossy(&log).into_owned();
    if timed_out {
        text.push_str(&format!(
            "\nipclab: the build was killed after {} s (its wall-clock limit)\n",
            BUILD_WALL.as_secs()
        ));
        return Ok((false, text));
    }
    Ok((st.success(), text))
}

/// A new file (O_CREAT|O_EXCL|O_NOFOLLOW): never an existing file, never through a link.
pub fn write_new(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    f.write_all(data)
}

/// Copies the tree under `src` into the new directory `dst` without following a symbolic link
/// anywhere (each level opened with O_NOFOLLOW relative to its parent's descriptor). Links,
/// FIFOs, sockets and devices are skipped and listed; files keep only their execute bit.
pub fn stage_copy(src: &Path, dst: &Path) -> std::result::Result<Vec<String>, String> {
    use nix::fcntl::{open, openat, OFlag};
    use nix::sys::stat::Mode;
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let top =
        open(src, flags, Mode::empty()).map_err(|e| format!("open {}: {e}", src.display()))?;
    let mut skipped = Vec::new();
    let mut budget = (STAGE_MAX_BYTES, STAGE_MAX_FILES);
    std::fs::create_dir(dst).map_err(|e| format!("mkdir {}: {e}", dst.display()))?;
    let mut stack = vec![(top, dst.to_path_buf(), String::new())];
    while let Some((dirfd, to, rel)) = stack.pop() {
        let mut dir = nix::dir::Dir::from_fd(dirfd).map_err(|e| format!("opendir {rel}: {e}"))?;
        let mut names = Vec::new();
        for e in dir.iter().flatten() {
            let n = e.file_name().to_bytes().to_vec();
            if n != b"." && n != b".." {
                names.push(n);
            }
        }
        for n in names {
            let name = String::from_utf8_lossy(&n).into_owned();
            let shown = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            // Our own outputs of the old layout are not the student's work.
            if name == ".ipclab-build" || name.starts_with(REPORT) {
                continue;
            }
            if budget.1 == 0 {
                return Err(format!("more than {STAGE_MAX_FILES} files"));
            }
            budget.1 -= 1;
            let cname =
                std::ffi::CString::new(n.clone()).map_err(|_| "NUL in a name".to_string())?;
            let st = nix::sys::stat::fstatat(
                &dir,
                cname.as_c_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| format!("lstat {shown}: {e}"))?;
            let kind = st.st_mode & libc::S_IFMT;
            let target = to.join(&name);
            if kind == libc::S_IFDIR {
                let fd = openat(&dir, cname.as_c_str(), flags, Mode::empty())
                    .map_err(|e| format!("open {shown}: {e}"))?;
                std::fs::create_dir(&target).map_err(|e| format!("mkdir {shown}: {e}"))?;
                stack.push((fd, target, shown));
            } else if kind == libc::S_IFREG {
                let fd = openat(
                    &dir,
                    cname.as_c_str(),
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| format!("open {shown}: {e}"))?;
                let mut from = std::fs::File::from(fd);
                // Re-checked on the descriptor: what we opened is what we copy.
                let md = from.metadata().map_err(|e| format!("fstat {shown}: {e}"))?;
                if !md.is_file() {
                    skipped.push(shown);
                    continue;
                }
                if md.len() > budget.0 {
                    return Err(format!("larger than {} MiB", STAGE_MAX_BYTES >> 20));
                }
                budget.0 -= md.len();
                use std::os::unix::fs::OpenOptionsExt;
                let mode = if st.st_mode & 0o111 != 0 {
                    0o755
                } else {
                    0o644
                };
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(&target)
                    .map_err(|e| format!("create {shown}: {e}"))?;
                std::io::copy(&mut std::io::Read::take(&mut from, md.len()), &mut f)
                    .map_err(|e| format!("copy {shown}: {e}"))?;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| format!("chmod {shown}: {e}"))?;
            } else {
                skipped.push(shown);
            }
        }
    }
    Ok(skipped)
}

/// What a job slot holds while it grades: its leased uid and the running grader's pid.
struct Slot<'a> {
    uid: Option<u32>,
    staging: &'a Path,
    running: &'a Mutex<Vec<u32>>,
}

/// Grades one submission in its own `ipclab grade` process.
fn grade_one(o: &BatchOptions, sub: &Path, k: usize, slot: &Slot<'_>) -> Row {
    let student = sub
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let uid = slot.uid;
    let mut row = Row {
        student: student.clone(),
        score: 0,
        max_score: 0,
        passed: false,
        failing: Vec::new(),
        flaky: Vec::new(),
        error: None,
        entry: String::new(),
        skipped: Vec::new(),
    };
    // A fresh directory for this student's reports; what a previous grading wrote goes first
    // (remove_dir_all never follows a link, and only we write under the results directory).
    let out = o.results.join(&student);
    if std::fs::symlink_metadata(&out).is_ok() {
        if let Err(e) = std::fs::remove_dir_all(&out) {
            row.error = Some(format!("cannot remove the old {}: {e}", out.display()));
            return row;
        }
    }
    if let Err(e) = std::fs::create_dir(&out) {
        row.error = Some(format!("cannot create {}: {e}", out.display()));
        return row;
    }
    let not_graded = |row: &mut Row, why: String| {
        let _ = write_new(
            &out.join(format!("{REPORT}.txt")),
            format!("not graded: {why}\n").as_bytes(),
        );
        row.error = Some(why);
    };
    let stage = slot.staging.join(k.to_string());
    match stage_copy(sub, &stage) {
        Ok(skipped) => row.skipped = skipped,
        Err(why) => {
            not_graded(&mut row, format!("cannot copy the submission: {why}"));
            return row;
        }
    }
    let (cmd, entry) = match prepare(o, &stage, uid, &out) {
        Ok(x) => x,
        Err(why) => {
            not_graded(&mut row, why);
            return row;
        }
    };
    row.entry = entry;
    let me = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            row.error = Some(format!("cannot find ipclab: {e}"));
            return row;
        }
    };
    let json = out.join(format!("{REPORT}.json"));
    let mut c = Command::new(me);
    c.args(["grade", &o.lab.to_string(), "--impl", &cmd])
        .args(["--lang", crate::lang::current().code()])
        .args(["--runs", &o.runs.to_string(), "--seed", &o.seed.to_string()])
        .args(["--format", "json", "--output"])
        .arg(&json)
        .args(["--format", "text", "--output"])
        .arg(out.join(format!("{REPORT}.txt")))
        .arg("--hide")
        .arg(&o.dir)
        .arg("--hide")
        .arg(&o.results)
        .current_dir(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(t) = o.timeout {
        c.args(["--timeout", &t.to_string()]);
    }
    if let Some(u) = uid {
        c.args(["--uid", &u.to_string()]);
    }
    // Safety: prctl in the child before exec, no allocation: the grader dies with its batch.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0);
            Ok(())
        });
    }
    let child = match c.spawn() {
        Ok(ch) => ch,
        Err(e) => {
            row.error = Some(format!("cannot run the grader: {e}"));
            return row;
        }
    };
    let pid = child.id();
    if let Ok(mut r) = slot.running.lock() {
        r.push(pid);
    }
    let res = child.wait_with_output();
    if let Ok(mut r) = slot.running.lock() {
        r.retain(|p| *p != pid);
    }
    let out = match res {
        Ok(out) => out,
        Err(e) => {
            row.error = Some(format!("cannot wait for the grader: {e}"));
            return row;
        }
    };
    let report: Option<serde_json::Value> = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let Some(r) = report.filter(|_| matches!(out.status.code(), Some(0 | 1))) else {
        let err = String::from_utf8_lossy(&out.stderr);
        row.error = Some(format!(
            "not graded (exit {}): {}",
            out.status.code().unwrap_or(-1),
            err.lines().last().unwrap_or("").trim()
        ));
        return row;
    };
    row.score = r["score"].as_u64().unwrap_or(0) as u32;
    row.max_score = r["max_score"].as_u64().unwrap_or(0) as u32;
    row.passed = r["passed"].as_bool().unwrap_or(false);
    let runs = r["runs"].as_array().cloned().unwrap_or_default();
    for c in r["checks"].as_array().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or("").to_string();
        // A check skipped for a failed precondition is not one more fault.
        if c["passed"] == true || c["skipped"] == true {
            continue;
        }
        let ok = runs
            .iter()
            .filter(|run| {
                run["checks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|x| x["name"] == name.as_str() && x["passed"] == true)
            })
            .count();
        if ok > 0 {
            row.flaky.push(format!("{name} {ok}/{} passed", runs.len()));
        }
        row.failing.push(name);
    }
    row
}

/// The submissions in DIR: its subdirectories, by name (hidden ones skipped).
pub fn submissions(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut subs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(&e, "read", dir.display()).into_usage())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    subs.sort();
    if subs.is_empty() {
        return Err(Error::usage(format!(
            "--submissions {}: no subdirectory (one per student) in it",
            dir.display()
        )));
    }
    Ok(subs)
}

pub fn batch(o: &BatchOptions) -> Result<Vec<Row>> {
    if !(1..=64).contains(&o.jobs) {
        return Err(Error::usage(format!("bad --jobs {}: 1..=64", o.jobs)));
    }
    let subs = submissions(&o.dir)?;
    let total = subs.len();
    // Copies of the submissions, in a directory only we write (0711: each box reaches its own
    // copy by its path, bound read-only; no one lists the others).
    let staging = tempfile::Builder::new()
        .prefix(&format!("ipclab-stage-{}-", std::process::id()))
        .tempdir_in("/tmp")
        .map_err(|e| Error::io(&e, "mkdir", "/tmp/ipclab-stage-*").with_code(3))?;
    std::fs::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o711))
        .map_err(|e| Error::io(&e, "chmod", staging.path().display()).with_code(3))?;
    let root = crate::sandbox::powers().drop_uid;
    let queue: Arc<Mutex<Vec<(usize, PathBuf)>>> =
        Arc::new(Mutex::new(subs.into_iter().enumerate().rev().collect()));
    let rows: Arc<Mutex<Vec<(usize, Row)>>> = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let running: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let start = Instant::now();
    let mut sigs = crate::signals::SignalPipe::new(&[
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGHUP,
    ])?;
    let slots = o.jobs.min(total);
    let mut leases = Vec::new();
    for _ in 0..slots {
        leases.push(if root {
            Some(crate::sandbox::Lease::claim()?)
        } else {
            None
        });
    }
    let finished = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for lease in &leases {
            let (queue, rows, done) = (queue.clone(), rows.clone(), done.clone());
            let slot = Slot {
                uid: lease.as_ref().map(|l| l.uid()),
                staging: staging.path(),
                running: &running,
            };
            let finished = &finished;
            s.spawn(move || {
                loop {
                    if crate::signals::interrupted().is_some() {
                        break;
                    }
                    let next = queue.lock().ok().and_then(|mut q| q.pop());
                    let Some((i, sub)) = next else { break };
                    let row = grade_one(o, &sub, i, &slot);
                    let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                    if bar {
                        let w = 30 * n / total;
                        eprint!(
                            "\r[{}{}] {n}/{total} graded ({:.0} s) — {}: {}/{}   ",
                            "#".repeat(w),
                            " ".repeat(30 - w),
                            start.elapsed().as_secs_f64(),
                            row.student,
                            row.score,
                            row.max_score
                        );
                    }
                    if let Ok(mut r) = rows.lock() {
                        r.push((i, row));
                    }
                }
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }
        // The main thread forwards an interrupt to every running grader (each ends its box and
        // exits); the slots then stop taking submissions.
        let mut forwarded = false;
        while finished.load(Ordering::SeqCst) < leases.len() {
            let _ = sigs.wait(Some(std::time::Duration::from_millis(200)));
            if !forwarded && crate::signals::interrupted().is_some() {
                forwarded = true;
                for pid in running.lock().map(|r| r.clone()).unwrap_or_default() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGTERM,
                    );
                }
            }
        }
    });
    if bar {
        eprintln!();
    }
    if let Some(sig) = crate::signals::interrupted() {
        return Err(super::interrupted_error(sig));
    }
    let mut rows = Arc::try_unwrap(rows)
        .map_err(|_| Error::runtime("grading threads still hold the results"))?
        .into_inner()
        .map_err(|_| Error::runtime("a grading thread panicked"))?;
    rows.sort_by_key(|(i, _)| *i);
    Ok(rows.into_iter().map(|(_, r)| r).collect())
}

pub fn csv(rows: &[Row]) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut out = String::from("student,score,max,passed,failing_checks,flaky,error\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            q(&r.student),
            r.score,
            r.max_score,
            r.passed,
            q(&r.failing.join(" ")),
            q(&r.flaky.join(crate::lang::sep())),
            q(r.error.as_deref().unwrap_or(""))
        ));
    }
    out
}

pub fn text(rows: &[Row]) -> String {
    let w = rows
        .iter()
        .map(|r| r.student.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let mut out = format!("{:<w$}  score   failing\n", "student");
    for r in rows {
        let what = match &r.error {
            Some(e) => e.clone(),
            None => r.failing.join(", "),
        };
        out.push_str(&format!(
            "{:<w$}  {:>2}/{:<2}   {what}{}\n",
            r.student,
            r.score,
            r.max_score,
            if r.flaky.is_empty() {
                String::new()
            } else {
                format!(" (flaky: {})", r.flaky.join(crate::lang::sep()))
            }
        ));
    }
    out
}
