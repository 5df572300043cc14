//! What a lab gives the grader, and what the grader gives a lab's judge. A lab (its folder
//! `labs/labN-name/`, listed by the registry) implements `Gradable`; the grader never names a
//! lab: it runs the contract in a box, lets the lab's scenario act while the run lasts, and hands
//! the judge one `Evidence` for every lab.

use super::harness::{Launch, Outcome, Script};
use super::report::{self, Check};
use super::{boxed, BoxDir};
use crate::error::Result;
use crate::spec::{self, Contract};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A lab as the grader sees it.
pub trait Gradable: spec::Folder {
    /// A fresh scenario for one run of one launch: it may act on the tree while the run lasts,
    /// then judges the evidence.
    fn scenario(&self, setup: &Setup) -> Box<dyn Scenario>;

    /// A run made of several launches (lab 6: five commands on one DIR) is driven by the lab,
    /// through the grader's `RunEnv`; `None`: one launch per run, judged by `scenario`.
    fn run(&self, _env: &RunEnv) -> Option<Result<RunResult>> {
        None
    }
}

/// What a scenario knows before the run starts.
pub struct Setup<'a> {
    /// The run's parameters (the contract's `{N}`, `{K}`...), drawn from its seed.
    pub params: &'a BTreeMap<String, u64>,
    /// The contract's DIR, in the box.
    pub dir: PathBuf,
    pub seed: u64,
    /// The `{EVENTS}` file, which a scenario may read while the run lasts.
    pub events: PathBuf,
    pub contract: &'a Contract,
}

impl Setup<'_> {
    /// Parameter `k`, or `default` when the contract has none of that name.
    pub fn param(&self, k: &str, default: u64) -> u64 {
        self.params.get(k).copied().unwrap_or(default)
    }
}

/// One run, from the lab's side.
pub trait Scenario {
    /// What acts on the run while it lasts (kills, clients); `None` leaves it alone.
    fn script(&mut self) -> Option<&mut dyn Script> {
        None
    }
    /// The run has ended: anything the scenario started (client threads) ends here.
    fn finish(&mut self) {}
    /// The checks, from the run's evidence and what the scenario itself saw.
    fn judge(&mut self, e: &Evidence) -> Vec<Check>;
}

/// Everything the grader observed of one run: one shape for every lab's judge.
pub struct Evidence<'a> {
    /// The process tree's events, the objects seen in DIR, stdout and stderr.
    pub out: &'a Outcome,
    pub params: &'a BTreeMap<String, u64>,
    /// The contract's DIR (its leftovers are judged).
    pub dir: &'a Path,
    /// The `{EVENTS}` file (see `crate::evlog`), where the contract has one.
    pub events: &'a Path,
    /// The `{P}` prefix of name-only objects, and the objects of that prefix left after the run.
    pub shm_prefix: Option<&'a str>,
    pub leaked: &'a [String],
    pub contract: &'a Contract,
    pub timeout_s: f64,
}

impl Evidence<'_> {
    pub fn param(&self, k: &str) -> u64 {
        self.params.get(k).copied().unwrap_or(0)
    }
}

/// What a lab that drives its own runs (`Gradable::run`) is given.
pub struct RunEnv<'a> {
    pub lab: u32,
    pub ctx: &'a boxed::Ctx,
    pub contract: &'a Contract,
    /// main's program (a box copy) and its arguments before the contract's (argv[0] first).
    pub program: &'a Path,
    pub args: &'a [String],
    pub seed: u64,
    pub run_no: u32,
    pub timeout_s: f64,
    pub race_lib: Option<&'a Path>,
    /// The command that replays this very run (for its transcript).
    pub replay: String,
    /// The reference programs are graded (each role is its own program beside `program`).
    pub reference: bool,
}

impl RunEnv<'_> {
    /// A fresh box for this run.
    pub fn new_box(&self) -> Result<BoxDir> {
        self.ctx.new_box(self.contract)
    }

    /// A launch of main with `argv` (the contract's arguments already substituted) in `root`,
    /// with the contract's limits.
    pub fn launch(&self, argv: Vec<String>, root: &BoxDir) -> Result<Launch> {
        self.launch_program(self.program, argv, root)
    }

    /// A launch of `program` (another of the box's programs: a reference role) with `argv`.
    pub fn launch_program(
        &self,
        program: &Path,
        argv: Vec<String>,
        root: &BoxDir,
    ) -> Result<Launch> {
        let (l, _) = super::base_launch(
            self.ctx,
            self.contract,
            program,
            argv,
            root,
            self.timeout_s,
            self.race_lib,
            self.seed,
            self.run_no,
        )?;
        Ok(l)
    }

    /// A launch of role `role` (labs with several programs, 8 and 9): the reference's program
    /// of that name beside main, or the implementation given `role` as its first argument;
    /// then `args`.
    pub fn launch_role(&self, role: &str, args: &[String], root: &BoxDir) -> Result<Launch> {
        let (program, mut argv) = if self.reference {
            let p = self.program.with_file_name(role);
            (p.clone(), vec![p.display().to_string()])
        } else {
            let mut a = self.args.to_vec();
            a.push(role.to_string());
            (self.program.to_path_buf(), a)
        };
        argv.extend(args.iter().cloned());
        self.launch_program(&program, argv, root)
    }

    /// The result of a run made of named launches (`phases`): the report's run (its params
    /// left to the caller) and what it says of the box (`extra` lines after the box's own), the
    /// environment as `shown` had it.
    pub fn result(
        &self,
        root: &BoxDir,
        phases: &[(&str, super::harness::Outcome)],
        checks: Vec<Check>,
        transcript: Option<String>,
        extra: Vec<String>,
        shown: &Launch,
    ) -> RunResult {
        let mut protections = self.protections(root);
        protections.extend(extra);
        RunResult {
            run: report::Run {
                seed: self.seed,
                params: serde_json::Map::new(),
                checks,
                wall_ms: phases.iter().map(|(_, o)| o.wall.as_millis() as u64).sum(),
                tracking: phases
                    .first()
                    .map(|(_, o)| o.tracking.clone())
                    .unwrap_or_default(),
                transcript,
                left_in_cwd: BoxDir::entries(&root.cwd()),
                left_in_box: self.left_in_box(root),
            },
            protections,
            environment: shown.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        }
    }

    /// What the box promised, for the report.
    pub fn protections(&self, root: &BoxDir) -> Vec<String> {
        self.ctx
            .protections(self.contract, self.timeout_s, root.mounted)
    }

    /// Saves a failed run's transcript where the reports go; its path, if written.
    pub fn transcript(&self, text: &str) -> Option<String> {
        super::write_transcript(&format!("lab{}-seed-{}.txt", self.lab, self.seed), text)
    }

    /// What the program left in the box's /tmp and /dev/shm (reported, not judged): the mount
    /// points of exposed directories under /tmp (a kit in /tmp/k) are the box's, not its.
    pub fn left_in_box(&self, root: &BoxDir) -> Vec<String> {
        let made = self.ctx.mounts(root).map(|(_, m)| m).unwrap_or_default();
        super::left_in_box(root, &made, &[])
    }
}

/// A run a lab drove itself, with what the report says of the box.
pub struct RunResult {
    pub run: report::Run,
    pub protections: Vec<String>,
    pub environment: Vec<String>,
}

/// The scenario of a lab whose runs are left alone: its judge alone.
pub struct JudgeOnly(pub fn(&Evidence) -> Vec<Check>);

impl Scenario for JudgeOnly {
    fn judge(&mut self, e: &Evidence) -> Vec<Check> {
        (self.0)(e)
    }
}
