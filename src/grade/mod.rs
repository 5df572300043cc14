//! The grader: judges any implementation of a lab — reference or a student's, any language — as a
//! black box, by its output, its process tree's events and what it leaves behind.
//!
//! Exit status: 0 every check passed, 1 a check failed, 2 bad usage, 3 the harness or the
//! environment failed (the implementation could not be run as it should be).

pub mod batch;
pub mod boxed;
pub mod cgroup;
pub mod checks;
pub mod daemonized;
pub mod harness;
pub mod net;
pub mod props;
pub mod report;
pub mod scenario;

use crate::error::{Error, Result};
use crate::sandbox::BoxDir;
use crate::spec::{self, Spec};
use rand::{RngExt, SeedableRng};
use report::LabReport;
pub use scenario::{Evidence, Gradable, JudgeOnly, RunEnv, RunResult, Scenario, Setup};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Tap,
    Junit,
    Gradescope,
}

pub struct Options {
    /// "all" or a lab number.
    pub lab: String,
    pub impl_cmd: Option<String>,
    pub runs: u32,
    pub seed: Option<u64>,
    pub timeout: Option<f64>,
    pub race: bool,
    /// Each format with its file (None: stdout).
    pub outputs: Vec<(Format, Option<PathBuf>)>,
    pub no_ptrace: bool,
    /// The uid a root grader runs the implementation as (default GRADE_UID).
    pub uid: Option<u32>,
    /// Grade each subdirectory of this directory (a class).
    pub submissions: Option<PathBuf>,
    pub jobs: usize,
    /// Batch mode: where reports and transcripts go (default: beside the class directory).
    pub results: Option<PathBuf>,
    /// Directories hidden from the box besides the checkout (batch: the class and its results).
    pub hide: Vec<PathBuf>,
}

/// Grades `o.lab` ("all", or a number) among `labs` (the registry's).
pub fn grade(o: &Options, labs: &[&dyn Gradable]) -> Result<i32> {
    let mut chosen: Vec<(&dyn Gradable, Spec)> = Vec::new();
    if o.lab == "all" {
        if o.impl_cmd.is_some() {
            return Err(Error::usage(
                "grade all grades the reference programs: --impl needs one lab number",
            ));
        }
        for l in labs {
            let s = l.spec()?;
            if s.contract.is_some() {
                chosen.push((*l, s));
            }
        }
    } else {
        let n: u32 = o
            .lab
            .parse()
            .map_err(|_| Error::usage(format!("bad lab {:?}: a number, or all", o.lab)))?;
        let mut numbers = Vec::new();
        for l in labs {
            let s = l.spec()?;
            numbers.push(s.lab.number.to_string());
            if s.lab.number == n {
                if s.contract.is_none() {
                    return Err(Error::usage(format!("lab {n} has no grading contract yet")));
                }
                chosen.push((*l, s));
            }
        }
        if chosen.is_empty() {
            return Err(Error::usage(format!(
                "no lab {n}: labs are {}",
                numbers.join(", ")
            )));
        }
    }
    let specs: Vec<Spec> = chosen.iter().map(|(_, s)| s.clone()).collect();
    if o.runs == 0 || o.runs > 1000 {
        return Err(Error::usage(format!("bad --runs {}: 1..=1000", o.runs)));
    }
    if let Some(t) = o.timeout {
        if !(t > 0.0 && t <= 3600.0) {
            return Err(Error::usage(format!(
                "bad --timeout {t}: seconds in (0, 3600]"
            )));
        }
    }
    if o.uid == Some(0) {
        return Err(Error::usage(
            "--uid 0: the implementation never runs as root",
        ));
    }
    check_outputs(&o.outputs)?;
    let seed = o.seed.unwrap_or_else(rand::random);
    // SIGINT, SIGTERM, SIGHUP end the box, clean up and exit 128 + signal (see `interrupted`).
    crate::signals::watch_interrupts()?;
    // What a grader killed by SIGKILL left (its box, cgroups, scratch) goes first; `ipclab
    // clean` does the same and says what it removed.
    let _ = crate::sandbox::sweep();
    crate::sandbox::mark("swept");
    if let Some(dir) = &o.submissions {
        return grade_class(o, &specs, dir, seed);
    }
    // Orphans of the implementation come to us, not to PID 1: that is how we see them.
    crate::process::set_child_subreaper().map_err(|e| e.with_code(3))?;
    // Not dumpable: a program running as our own uid (a normal user's grader) can neither
    // ptrace us nor read our memory through /proc.
    // Safety: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let mut ctx = boxed::Ctx::new(o.uid, &o.hide)?;
    crate::sandbox::mark("ctx");
    let mut reports = Vec::new();
    for (lab, s) in &chosen {
        reports.push(grade_lab(o, *lab, s, seed, &mut ctx)?);
    }
    emit(o, &reports)?;
    Ok(if reports.iter().all(|r| r.passed) {
        0
    } else {
        1
    })
}

/// Every `--output` file can be written (its directory exists, it is not a directory): said
/// before anything runs, not after the last run.
fn check_outputs(outputs: &[(Format, Option<PathBuf>)]) -> Result<()> {
    for f in outputs.iter().filter_map(|(_, f)| f.as_ref()) {
        if f.is_dir() {
            return Err(Error::usage(format!(
                "--output {}: is a directory",
                f.display()
            )));
        }
        let parent = match f.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !parent.is_dir() {
            return Err(Error::usage(format!(
                "--output {}: no directory {}",
                f.display(),
                parent.display()
            )));
        }
    }
    Ok(())
}

/// The signal that interrupted the grader, as the error that ends it (exit 128 + signal).
pub fn interrupted_error(sig: nix::sys::signal::Signal) -> Error {
    Error::runtime(format!(
        "interrupted by {sig}: the box was killed and removed, nothing graded"
    ))
    .with_code(128 + sig as i32)
}

/// `--submissions DIR`: every student's submission graded, the class summary written to DIR.
fn grade_class(o: &Options, specs: &[Spec], dir: &Path, seed: u64) -> Result<i32> {
    let [s] = specs else {
        return Err(Error::usage(
            "--submissions grades one lab: give its number, not all",
        ));
    };
    if o.impl_cmd.is_some() {
        return Err(Error::usage("--submissions and --impl exclude each other: each submission's entry point is found by convention"));
    }
    if !dir.is_dir() {
        return Err(Error::usage(format!(
            "--submissions {}: not a directory",
            dir.display()
        )));
    }
    if !(1..=64).contains(&o.jobs) {
        return Err(Error::usage(format!("bad --jobs {}: 1..=64", o.jobs)));
    }
    // Bad input is said before anything is made (the results directory included).
    batch::submissions(dir)?;
    let results = results_dir(dir, o.results.as_deref())?;
    let rows = batch::batch(&batch::BatchOptions {
        lab: s.lab.number,
        dir: dir.to_path_buf(),
        results: results.clone(),
        jobs: o.jobs,
        runs: o.runs,
        seed,
        timeout: o.timeout,
    })?;
    let json = serde_json::json!({
        "lab": s.lab.number,
        "seed": seed,
        "runs": o.runs,
        "results": results.display().to_string(),
        "students": rows,
    });
    let json = format!(
        "{}\n",
        serde_json::to_string_pretty(&json).unwrap_or_default()
    );
    let csv = batch::csv(&rows);
    for (name, text) in [("class-summary.csv", &csv), ("class-summary.json", &json)] {
        let p = results.join(name);
        let _ = std::fs::remove_file(&p);
        batch::write_new(&p, text.as_bytes()).map_err(|e| Error::io(&e, "write", p.display()))?;
    }
    let outputs = if o.outputs.is_empty() {
        vec![(Format::Text, None)]
    } else {
        o.outputs.clone()
    };
    for (fmt, file) in outputs {
        let text = match fmt {
            Format::Json => json.clone(),
            Format::Text => format!(
                "lab {}, seed {seed}, {} run(s) each; reports in {}/<student>/, summary in class-summary.csv and .json there\n{}",
                s.lab.number,
                o.runs,
                results.display(),
                batch::text(&rows)
            ),
            other => {
                return Err(Error::usage(format!(
                    "--submissions writes text or json summaries (and the CSV); {other:?} is per student: see each ipclab-report.*"
                )))
            }
        };
        match file {
            None => print!("{text}"),
            Some(f) => std::fs::write(&f, text).map_err(|e| Error::io(&e, "write", f.display()))?,
        }
    }
    Ok(if rows.iter().all(|r| r.passed) { 0 } else { 1 })
}

/// `--results R` (default: `DIR-results` beside DIR): made if absent; never inside the class
/// directory (students' ground), never a link, and ours.
fn results_dir(class: &Path, given: Option<&Path>) -> Result<PathBuf> {
    let class = class
        .canonicalize()
        .map_err(|e| Error::io(&e, "realpath", class.display()).into_usage())?;
    let r = match given {
        Some(r) => std::env::current_dir()
            .map_err(|e| Error::io(&e, "getcwd", ""))?
            .join(r),
        None => {
            let name = class.file_name().unwrap_or_default().to_string_lossy();
            class.with_file_name(format!("{name}-results"))
        }
    };
    match std::fs::symlink_metadata(&r) {
        Err(_) => {
            let parent = r.parent().unwrap_or(Path::new("/"));
            if !parent.is_dir() {
                return Err(Error::usage(format!(
                    "--results {}: no directory {}",
                    r.display(),
                    parent.display()
                )));
            }
            std::fs::create_dir(&r)
                .map_err(|e| Error::io(&e, "mkdir", r.display()).into_usage())?;
        }
        Ok(md) if !md.is_dir() => {
            return Err(Error::usage(format!(
                "--results {}: not a directory",
                r.display()
            )))
        }
        Ok(md) if std::os::unix::fs::MetadataExt::uid(&md) != nix::unistd::geteuid().as_raw() => {
            return Err(Error::usage(format!(
                "--results {}: owned by someone else",
                r.display()
            )))
        }
        Ok(_) => {}
    }
    let r = r
        .canonicalize()
        .map_err(|e| Error::io(&e, "realpath", r.display()).into_usage())?;
    if r.starts_with(&class) {
        return Err(Error::usage(format!(
            "--results {}: inside the class directory, where students write",
            r.display()
        )));
    }
    Ok(r)
}

/// Seed of run i: the first run's is S itself, the others derived from it, so `--seed S --runs
/// K` repeats K fresh but reproducible parameter sets, and any run's own seed pasted back as
/// `--seed` replays that very run.
pub fn run_seed(seed: u64, i: u32) -> u64 {
    if i == 0 {
        return seed;
    }
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64 + 1));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The contract's random parameters for a run seed, each in the spec's range (drawn in name order).
pub fn params_for(run_seed: u64, c: &spec::Contract) -> std::collections::BTreeMap<String, u64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(run_seed);
    c.params
        .iter()
        .map(|(k, r)| (k.clone(), rng.random_range(r.min..=r.max)))
        .collect()
}

/// N of lab 2 for a run seed (what the benchmark runs directly).
pub fn param_n(run_seed: u64, c: &spec::Contract) -> u64 {
    params_for(run_seed, c).get("N").copied().unwrap_or(1)
}

fn grade_lab(
    o: &Options,
    lab: &dyn Gradable,
    s: &Spec,
    seed: u64,
    ctx: &mut boxed::Ctx,
) -> Result<LabReport> {
    let c = s
        .contract
        .clone()
        .ok_or_else(|| Error::usage("no contract"))?;
    let (program, args, shown, ref_uid) = prepare_main(o, s, &c, ctx)?;
    let timeout_s = o.timeout.unwrap_or(c.time_budget_ms as f64 / 1000.0);
    let race_lib = match o.race {
        true => Some(ctx.library(&race_library()?)?),
        false => None,
    };
    let mut report = LabReport {
        contract_version: 1,
        lab: s.lab.number,
        seed,
        passed: false,
        score: 0,
        max_score: 0,
        implementation: shown,
        race: o.race,
        protections: Vec::new(),
        environment: Vec::new(),
        runs: Vec::new(),
        checks: Vec::new(),
    };
    for i in 0..o.runs {
        if let Some(sig) = crate::signals::interrupted() {
            return Err(interrupted_error(sig));
        }
        let env = RunEnv {
            lab: s.lab.number,
            ctx,
            contract: &c,
            program: &program,
            args: &args,
            seed: run_seed(seed, i),
            run_no: i,
            timeout_s,
            race_lib: race_lib.as_deref(),
            replay: reproduce(o, s.lab.number, run_seed(seed, i)),
            reference: o.impl_cmd.is_none(),
        };
        match lab.run(&env) {
            Some(run) => {
                let run = run?;
                if report.protections.is_empty() {
                    report.protections = run.protections;
                    report.environment = run.environment;
                }
                report.runs.push(run.run);
            }
            None => one_run(o, lab, &env, ref_uid, &mut report)?,
        }
    }
    report.aggregate();
    Ok(report)
}

/// main's program (a box copy), its arguments before the contract's (argv[0] first), how the
/// report names it, and the second uid a reference main beside the implementation runs as.
fn prepare_main(
    o: &Options,
    s: &Spec,
    c: &spec::Contract,
    ctx: &mut boxed::Ctx,
) -> Result<(PathBuf, Vec<String>, String, Option<u32>)> {
    let (program, args, shown) = command_for(c, s, o.impl_cmd.as_deref())?;
    if o.impl_cmd.is_some() && c.supervisor.is_none() {
        ctx.expose_command(&program, &args);
    } else if let Some(cmd) = &o.impl_cmd {
        let (p, a, _) = resolve_impl(cmd)?;
        ctx.expose_command(&p, &a);
    }
    // The box runs references as execute-only copies: every program of the lab when grading
    // the reference (they exec each other), the supervisor alone beside an implementation.
    if ctx.refs.is_some() {
        let mut names: Vec<String> = c.supervisor.iter().cloned().collect();
        // The supervisor looks for its own lab's programs beside it (lab 3's servers).
        if let Some(sup) = &c.supervisor {
            for other in spec::all()? {
                if other.lab.binaries.contains(sup) {
                    names.extend(other.lab.binaries.iter().cloned());
                }
            }
        }
        if o.impl_cmd.is_none() {
            names.extend(s.lab.binaries.iter().cloned());
            names.extend(c.roles.iter().cloned());
        }
        for n in names {
            if let Ok(p) = crate::process::sibling_binary(&n) {
                ctx.reference(&p)?;
            }
        }
    }
    let program = ctx.reference(&program)?;
    let mut args: Vec<String> = args.iter().map(|a| ctx.rewrite(a)).collect::<Result<_>>()?;
    args.insert(0, program.display().to_string());
    // A reference main beside the implementation (lab 4's watchdog) runs as the box's second
    // uid and starts the implementation's roles under the first (its `--role-uid`).
    let ref_uid = match (&c.supervisor, &o.impl_cmd) {
        (Some(_), Some(_)) => ctx.reference_uid()?,
        _ => None,
    };
    if let (Some(_), Some((a, _))) = (ref_uid, ctx.run_as) {
        args.push("--role-uid".into());
        args.push(a.to_string());
    }
    Ok((program, args, shown, ref_uid))
}

/// One run of one launch: the box, the launch, the scenario acting and judging, the report's run.
fn one_run(
    o: &Options,
    lab: &dyn Gradable,
    env: &RunEnv,
    ref_uid: Option<u32>,
    report: &mut LabReport,
) -> Result<()> {
    let (ctx, c, program, args) = (env.ctx, env.contract, env.program, env.args);
    let (rs, i, timeout_s, race_lib) = (env.seed, env.run_no, env.timeout_s, env.race_lib);
    let values = params_for(rs, c);
    let root = ctx.new_box(c)?;
    let uses = |k: &str| c.args.iter().any(|a| a.contains(k));
    let shm_prefix = uses("{P}").then(|| format!("ipclabg{:08x}", rs as u32));
    let mut argv = args.to_vec();
    // The reference's evidence where only its uid (and we) can reach.
    let events = match ref_uid {
        Some(b) => root.private_to(b)?.join("events.jsonl"),
        None => root.cwd().join("events.jsonl"),
    };
    for a in &c.args {
        let mut a = a
            .replace("{DIR}", &root.dir().display().to_string())
            .replace("{EVENTS}", &events.display().to_string());
        if let Some(p) = &shm_prefix {
            a = a.replace("{P}", p);
        }
        for (k, v) in &values {
            a = a.replace(&format!("{{{k}}}"), &v.to_string());
        }
        argv.push(a);
    }
    // Name-only objects live in the box's /dev/shm when it has one.
    let shm_dir = if root.mounted {
        root.shm()
    } else {
        PathBuf::from("/dev/shm")
    };
    let (watch_dir, watch_prefix, watch_alias) = match &shm_prefix {
        Some(p) if !uses("{DIR}") => (
            Some(shm_dir.clone()),
            p.clone(),
            root.mounted.then(|| PathBuf::from("/dev/shm")),
        ),
        _ => (uses("{DIR}").then(|| root.dir()), String::new(), None),
    };
    let (mut launch, made) = base_launch(ctx, c, program, argv, &root, timeout_s, race_lib, rs, i)?;
    launch.watch_dir = watch_dir;
    launch.watch_prefix = watch_prefix;
    launch.watch_alias = watch_alias;
    if let Some(b) = ref_uid {
        launch.run_as = Some((b, b));
        launch.keep_setuid = true;
    }
    launch.use_ptrace = !o.no_ptrace;
    let mut scenario = lab.scenario(&Setup {
        params: &values,
        dir: root.dir(),
        seed: rs,
        events: events.clone(),
        contract: c,
    });
    // Without a box of its own, /dev/shm is the machine's: what the run adds there is told
    // apart by being new, ours, and held by no process once the tree is gone.
    // Only for a normal user's grader: as root the box has its own /dev/shm (and a root
    // grader without one must not touch what other root processes make meanwhile).
    let shm_before = (!root.mounted && !nix::unistd::geteuid().is_root())
        .then(|| BoxDir::entries(Path::new("/dev/shm")));
    crate::sandbox::mark("box made");
    let out = harness::run_scripted(&launch, scenario.script());
    crate::sandbox::mark("run");
    // The scenario's threads (lab 4's clients) end within their patience; none may live on
    // into the next fork.
    scenario.finish();
    let out = out.map_err(|e| Error::runtime(e.0).with_code(3))?;
    if let Some(sig) = out.interrupted {
        return Err(interrupted_error(sig));
    }
    // Name-only objects the run left: judged, then removed (the machine stays clean).
    let leaked: Vec<String> = shm_prefix
        .as_deref()
        .map(|p| {
            BoxDir::entries(&shm_dir)
                .into_iter()
                .filter(|n| n.starts_with(p))
                .collect()
        })
        .unwrap_or_default();
    for name in &leaked {
        let _ = std::fs::remove_file(shm_dir.join(name));
    }
    let checks = scenario.judge(&Evidence {
        out: &out,
        params: &values,
        dir: &root.dir(),
        events: &events,
        shm_prefix: shm_prefix.as_deref(),
        leaked: &leaked,
        contract: c,
        timeout_s,
    });
    let failed = checks.iter().any(|c| !c.passed);
    let mut params = serde_json::Map::new();
    for (k, v) in &values {
        params.insert(k.clone(), (*v).into());
    }
    if let Some(p) = &shm_prefix {
        params.insert("P".into(), p.clone().into());
    }
    let transcript = if failed {
        save_transcript(env.lab, rs, &env.replay, &launch, &out, &checks)
    } else {
        None
    };
    if report.protections.is_empty() {
        report.protections = ctx.protections(c, timeout_s, root.mounted);
        if let (Some(b), Some(sup)) = (ref_uid, &c.supervisor) {
            report.protections.push(tf!(
                "references: {sup} runs as uid {b}, the implementation's processes as uid {}: \
                 they can neither signal, trace nor rewrite it, nor reach its evidence",
                "références : {sup} tourne sous l'uid {b}, les processus de l'implémentation sous \
                 l'uid {} : ils ne peuvent ni lui envoyer de signal, ni le tracer, ni le réécrire, \
                 ni atteindre ses preuves",
                ctx.run_as.map(|(a, _)| a).unwrap_or(0)
            ));
        }
        report.protections.extend(out.protections.clone());
        report.environment = launch.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    }
    let mut left_in_box = left_in_box(&root, &made, &leaked);
    left_in_box.extend(out.sysv_left.iter().cloned());
    if let Some(before) = &shm_before {
        for name in orphaned_shm(before, &leaked) {
            let path = Path::new("/dev/shm").join(&name);
            if std::fs::remove_file(&path).is_ok() {
                left_in_box.push(path.display().to_string());
            }
        }
    }
    report.runs.push(report::Run {
        seed: rs,
        params,
        checks,
        wall_ms: out.wall.as_millis() as u64,
        tracking: out.tracking.clone(),
        transcript,
        // The events file is the grader's choice of path, not something the program left.
        left_in_cwd: BoxDir::entries(&root.cwd())
            .into_iter()
            .filter(|n| root.cwd().join(n) != events)
            .collect(),
        left_in_box,
    });
    drop(root);
    crate::sandbox::mark("box removed");
    Ok(())
}

/// Objects of the machine's /dev/shm that are new since `before`, owned by us, not `judged`,
/// and that no process has open or mapped: what a run killed at its time limit left (its
/// processes' names may carry pids of the box's own pid namespace, so the name cannot tell).
fn orphaned_shm(before: &[String], judged: &[String]) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = nix::unistd::geteuid().as_raw();
    let new: Vec<String> = BoxDir::entries(Path::new("/dev/shm"))
        .into_iter()
        .filter(|n| !before.contains(n) && !judged.contains(n))
        .filter(|n| {
            std::fs::symlink_metadata(Path::new("/dev/shm").join(n))
                .is_ok_and(|m| m.uid() == uid && m.file_type().is_file())
        })
        .collect();
    if new.is_empty() {
        return new;
    }
    let held = held_shm();
    new.into_iter().filter(|n| !held.contains(n)).collect()
}

/// Names under /dev/shm that some process we can see holds open or has mapped.
fn held_shm() -> std::collections::BTreeSet<String> {
    let mut held = std::collections::BTreeSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return held;
    };
    for p in procs.flatten() {
        let dir = p.path();
        if let Ok(fds) = std::fs::read_dir(dir.join("fd")) {
            for fd in fds.flatten() {
                if let Ok(t) = std::fs::read_link(fd.path()) {
                    if let Ok(rest) = t.strip_prefix("/dev/shm") {
                        held.insert(rest.display().to_string());
                    }
                }
            }
        }
        if let Ok(maps) = std::fs::read_to_string(dir.join("maps")) {
            for l in maps.lines() {
                if let Some(i) = l.find("/dev/shm/") {
                    let name = l[i + 9..].trim_end_matches(" (deleted)");
                    held.insert(name.to_string());
                }
            }
        }
    }
    held
}

/// What the program left in the box's /tmp and /dev/shm (not judged, reported), without the
/// mount points the box made and the objects the contract judged.
pub(crate) fn left_in_box(root: &BoxDir, made: &[String], judged: &[String]) -> Vec<String> {
    if !root.mounted {
        return Vec::new();
    }
    let mut v = Vec::new();
    for (dir, shown) in [(root.tmp(), "/tmp"), (root.shm(), "/dev/shm")] {
        for n in BoxDir::entries(&dir) {
            if !made.contains(&n) && !judged.contains(&n) {
                v.push(format!("{shown}/{n}"));
            }
        }
    }
    v
}

/// The program main runs, the arguments before the contract's, and how reports name it: the
/// implementation's command, or the lab's reference (its first binary, or its supervisor).
pub fn command_for(
    c: &spec::Contract,
    s: &Spec,
    impl_cmd: Option<&str>,
) -> Result<(PathBuf, Vec<String>, String)> {
    match (&c.supervisor, impl_cmd) {
        (Some(sup), cmd) => supervised(sup, &c.roles, cmd),
        (None, Some(cmd)) => resolve_impl(cmd),
        (None, None) => {
            let bin = s.lab.binaries.first().cloned().unwrap_or_default();
            let p = crate::process::sibling_binary(&bin)?;
            Ok((p.clone(), vec![], tf!("reference {bin}", "référence {bin}")))
        }
    }
}

/// A run's launch with the contract's limits, in box `root`; callers set what differs (watch,
/// tracking). Also the names the box's mounts made in its /tmp.
#[allow(clippy::too_many_arguments)]
pub(crate) fn base_launch(
    ctx: &boxed::Ctx,
    c: &spec::Contract,
    program: &Path,
    argv: Vec<String>,
    root: &BoxDir,
    timeout_s: f64,
    race_lib: Option<&Path>,
    rs: u64,
    run_no: u32,
) -> Result<(harness::Launch, Vec<String>)> {
    let mut extra = Vec::new();
    if let Some(lib) = race_lib {
        extra.push(("LD_PRELOAD".to_string(), lib.display().to_string()));
        extra.push(("IPCLAB_RACE_SEED".to_string(), rs.to_string()));
    }
    let user = match ctx.run_as {
        Some((u, _)) => boxed::box_user(u),
        None => std::env::var("USER").unwrap_or_else(|_| "student".into()),
    };
    let (mounts, made) = ctx.mounts(root)?;
    let launch = harness::Launch {
        program: program.to_path_buf(),
        argv,
        env: crate::sandbox::environment(&root.cwd(), &user, &extra),
        cwd: root.cwd(),
        run_as: ctx.run_as,
        timeout: Duration::from_secs_f64(timeout_s),
        cpu_secs: timeout_s.ceil() as u64 + 1,
        output_cap: c.output_cap_bytes,
        max_procs: c.max_procs,
        watch_dir: None,
        watch_prefix: String::new(),
        zombie_grace: Duration::from_millis(c.zombie_grace_ms),
        linger: Duration::from_millis(c.linger_ms),
        use_ptrace: true,
        keep_survivors: false,
        run_no,
        netns: ctx.powers.namespaces,
        join_netns: None,
        ipcns: ctx.powers.namespaces,
        user_pid_ns: ctx.powers.userns,
        mounts,
        file_size: c.file_size_mb << 20,
        address_space: Some(c.memory_mb << 20),
        watch_alias: None,
        keep_setuid: false,
    };
    Ok((launch, made))
}

/// Main is the reference `sup` (lab 4: the watchdog); each role is given to it as `--ROLE CMD`,
/// CMD being `IMPL ROLE` (or the reference program of that role).
fn supervised(
    sup: &str,
    roles: &[String],
    impl_cmd: Option<&str>,
) -> Result<(PathBuf, Vec<String>, String)> {
    let program = crate::process::sibling_binary(sup)?;
    let mut args = Vec::new();
    for role in roles {
        let cmd = match impl_cmd {
            Some(cmd) => {
                let (prog, mut words, _) = resolve_impl(cmd)?;
                words.insert(0, prog.display().to_string());
                words.push(role.clone());
                shlex::try_join(words.iter().map(|w| w.as_str()))
                    .map_err(|e| Error::usage(format!("--impl {cmd:?}: {e}")))?
            }
            None => crate::process::sibling_binary(role)?.display().to_string(),
        };
        args.push(format!("--{role}"));
        args.push(cmd);
    }
    let shown = match impl_cmd {
        Some(cmd) => tf!(
            "{cmd} (as {}, under the reference {sup})",
            "{cmd} (comme {}, sous la référence {sup})",
            roles.join(", ")
        ),
        None => tf!(
            "reference {} under the reference {sup}",
            "référence {} sous la référence {sup}",
            roles.join(", ")
        ),
    };
    Ok((program, args, shown))
}

/// Splits CMD shell-style (no shell runs). The program: a path with a slash is taken relative to
/// the caller's cwd; a bare name is looked up in PATH. Arguments naming existing files relative
/// to the caller's cwd are made absolute too, since the implementation runs in a scratch cwd.
fn resolve_impl(cmd: &str) -> Result<(PathBuf, Vec<String>, String)> {
    let words = shlex::split(cmd)
        .ok_or_else(|| Error::usage(format!("--impl {cmd:?}: unbalanced quotes")))?;
    let Some((prog, rest)) = words.split_first() else {
        return Err(Error::usage("--impl is empty"));
    };
    let cwd = std::env::current_dir().map_err(|e| Error::io(&e, "getcwd", ""))?;
    let program = if prog.contains('/') {
        let p = cwd.join(prog);
        if !p.exists() {
            return Err(Error::usage(format!("--impl: {prog}: no such file")));
        }
        p
    } else {
        which(prog).ok_or_else(|| Error::usage(format!("--impl: {prog} not found in PATH")))?
    };
    {
        use std::os::unix::fs::PermissionsExt;
        let md = program
            .metadata()
            .map_err(|e| Error::io(&e, "stat", program.display()).into_usage())?;
        if md.is_dir() {
            return Err(Error::usage(format!("--impl: {prog}: is a directory")));
        }
        if !md.is_file() || md.permissions().mode() & 0o111 == 0 {
            return Err(Error::usage(format!(
                "--impl: {prog}: not executable (chmod +x it, or name its interpreter: /usr/bin/python3 {prog})"
            )));
        }
    }
    let args = rest
        .iter()
        .map(|a| {
            let p = cwd.join(a);
            if !a.starts_with('-') && !Path::new(a).is_absolute() && p.exists() {
                p.display().to_string()
            } else {
                a.clone()
            }
        })
        .collect();
    Ok((program, args, cmd.to_string()))
}

fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The LD_PRELOAD shim built beside ipclab (`libipclab_race.so`).
pub fn race_library() -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| Error::io(&e, "readlink", "/proc/self/exe"))?;
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    for cand in [
        dir.join("libipclab_race.so"),
        dir.join("deps/libipclab_race.so"),
    ] {
        if cand.exists() {
            return Ok(cand);
        }
    }
    Err(Error::runtime(format!(
        "--race needs {}: build it with `cargo build --workspace`",
        dir.join("libipclab_race.so").display()
    ))
    .with_code(3))
}

/// The command that replays run `rs` exactly (its seed is the first run's of that command).
fn reproduce(o: &Options, lab: u32, rs: u64) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut c = format!("ipclab grade {lab}");
    if let Some(i) = &o.impl_cmd {
        c.push_str(&format!(" --impl {}", quote(i)));
    }
    c.push_str(&format!(" --seed {rs}"));
    if let Some(t) = o.timeout {
        c.push_str(&format!(" --timeout {t}"));
    }
    if o.race {
        c.push_str(" --race");
    }
    c
}

/// Everything about a failing run, for the student to read: target/grade/labN-seed-S.txt.
fn save_transcript(
    lab: u32,
    seed: u64,
    again: &str,
    l: &harness::Launch,
    out: &harness::Outcome,
    checks: &[report::Check],
) -> Option<String> {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{}",
        tf!(
            "lab {lab}, seed {seed}\nreplay this run: {again}\ncommand: {}\ntracking: {}\nwall: {:.3} s",
            "lab {lab}, graine {seed}\nrejouer cette exécution : {again}\ncommande : {}\nsuivi : {}\ndurée : {:.3} s",
            l.argv.join(" "),
        out.tracking,
            out.wall.as_secs_f64()
        )
    );
    let _ = writeln!(t, "\n-- {}", tf!("checks", "vérifications"));
    for c in checks {
        let _ = writeln!(
            t,
            "{} {}: {}",
            if c.passed {
                "OK  "
            } else if c.skipped {
                "SKIP"
            } else {
                "FAIL"
            },
            c.name,
            c.detail
        );
    }
    let _ = writeln!(
        t,
        "\n-- {}",
        tf!(
            "stdout ({} bytes), ms after main started",
            "stdout ({} octets), en ms après le départ de main",
            out.stdout_bytes
        )
    );
    for (at, line) in &out.stdout_lines {
        let _ = writeln!(t, "{:>9.3} ms  {line}", at.as_secs_f64() * 1e3);
    }
    let _ = writeln!(
        t,
        "\n-- {}",
        tf!("stderr ({} bytes)", "stderr ({} octets)", out.stderr_bytes)
    );
    for line in out.stderr.split(|b| *b == b'\n') {
        let _ = writeln!(t, "{}", harness::clip_line(line, 0));
    }
    let _ = writeln!(
        t,
        "-- {}",
        tf!(
            "processes (times in ms after main started)",
            "processus (temps en ms après le départ de main)"
        )
    );
    let fr = crate::lang::fr();
    let _ = writeln!(
        t,
        "{:>7} {:>7} {:>9} {:>9}  {:<24} {}",
        "pid",
        "parent",
        if fr { "né" } else { "born" },
        if fr { "fini" } else { "exited" },
        if fr { "programme" } else { "program" },
        tf!(
            "files of DIR it held open",
            "fichiers de DIR qu'il tenait ouverts"
        )
    );
    for p in out.procs.values() {
        let held: Vec<&str> = p.held.iter().map(String::as_str).collect();
        let _ = writeln!(
            t,
            "{:>7} {:>7} {:>9.3} {:>9}  {:<24} {}",
            p.pid,
            p.parent,
            p.born.as_secs_f64() * 1e3,
            p.exited
                .map(|e| format!("{:.3}", e.as_secs_f64() * 1e3))
                .unwrap_or(tf!("running", "en cours")),
            p.exe.as_deref().unwrap_or("?"),
            if held.is_empty() {
                "-".into()
            } else {
                held.join(", ")
            }
        );
    }
    let _ = writeln!(
        t,
        "\n-- {}",
        tf!(
            "what happened in DIR (inotify), in order",
            "ce qui s'est passé dans DIR (inotify), dans l'ordre"
        )
    );
    if out.dir_events.is_empty() {
        let _ = writeln!(t, "{}", tf!("nothing", "rien"));
    }
    for e in &out.dir_events {
        let _ = writeln!(t, "{}", e.describe());
    }
    write_transcript(&format!("lab{lab}-seed-{seed}.txt"), &t)
}

/// target/grade/NAME under the grader's cwd (batch mode: the student's results directory),
/// never through a symbolic link.
pub(crate) fn write_transcript(name: &str, text: &str) -> Option<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = PathBuf::from("target/grade");
    for d in [Path::new("target"), dir.as_path()] {
        let _ = std::fs::create_dir(d);
        if !std::fs::symlink_metadata(d).is_ok_and(|m| m.is_dir()) {
            return None;
        }
    }
    let path = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .ok()?;
    f.write_all(text.as_bytes()).ok()?;
    Some(path.display().to_string())
}

fn emit(o: &Options, reports: &[LabReport]) -> Result<()> {
    let outputs = if o.outputs.is_empty() {
        vec![(Format::Text, None)]
    } else {
        o.outputs.clone()
    };
    for (fmt, file) in &outputs {
        let text = match fmt {
            Format::Text => {
                let mut s: String = reports
                    .iter()
                    .map(report::text)
                    .collect::<Vec<_>>()
                    .join("\n");
                if reports.len() > 1 {
                    let score: u32 = reports.iter().map(|r| r.score).sum();
                    let max: u32 = reports.iter().map(|r| r.max_score).sum();
                    s.push_str(&format!("\nTotal: {score}/{max}\n"));
                }
                s
            }
            Format::Json => {
                let v = if o.lab == "all" {
                    serde_json::json!({
                        "labs": reports.iter().map(report::json).collect::<Vec<_>>(),
                        "passed": reports.iter().all(|r| r.passed),
                        "score": reports.iter().map(|r| r.score).sum::<u32>(),
                        "max_score": reports.iter().map(|r| r.max_score).sum::<u32>(),
                    })
                } else {
                    reports.first().map(report::json).unwrap_or_default()
                };
                format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
            }
            Format::Tap => report::tap(reports),
            Format::Junit => report::junit(reports),
            Format::Gradescope => format!(
                "{}\n",
                serde_json::to_string_pretty(&report::gradescope(reports)).unwrap_or_default()
            ),
        };
        match file {
            None => print!("{text}"),
            Some(f) => std::fs::write(f, text).map_err(|e| Error::io(&e, "write", f.display()))?,
        }
    }
    Ok(())
}
