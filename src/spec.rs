//! Lab specs: each `labs/labN-name/spec.toml`, compiled in, is the one source of a lab's facts.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;

// The labs' shipped files (`FILES`), embedded by build.rs from the `labs/*/` folders.
include!(concat!(env!("OUT_DIR"), "/lab_files.rs"));

/// A lab's folder under labs/: what every engine's view of a lab (grading, trace, walkthrough)
/// starts from. The registry (`crate::labs`) is the only list of them.
pub trait Folder: Sync {
    /// `labN-name`.
    fn dir(&self) -> &'static str;
    fn spec(&self) -> Result<Spec> {
        load(self.dir())
    }
}

/// The text of `labs/<dir>/<name>`, if the lab ships it.
pub fn file(dir: &str, name: &str) -> Option<&'static str> {
    let path = format!("{dir}/{name}");
    FILES.iter().find(|(p, _)| *p == path).map(|(_, t)| *t)
}

/// The lab folders that have a spec.toml, in lab order (lab10 after lab9).
pub fn dirs() -> Vec<&'static str> {
    let mut v: Vec<&str> = FILES
        .iter()
        .filter_map(|(p, _)| p.strip_suffix("/spec.toml"))
        .filter(|d| !d.contains('/'))
        .collect();
    v.sort_by_key(|d| number_of(d));
    v
}

/// N of a folder named `labN-name`.
pub fn number_of(dir: &str) -> u32 {
    dir.strip_prefix("lab")
        .and_then(|r| r.split('-').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(u32::MAX)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub lab: Lab,
    /// What the grader checks; absent until the lab has a grading contract.
    pub contract: Option<Contract>,
    /// What the lab's tests may cost in CI: seconds by test binary (`tests/NAME.rs`), its
    /// share where labs share one. `.ci/budget` (make test) fails a binary past the sum of its
    /// shares and its line in tests/budget.toml.
    #[serde(default)]
    pub ci: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lab {
    /// N in `make labN` and `ipclab lab N`.
    pub number: u32,
    /// Short name: the directory is `labs/lab{number}-{name}`.
    pub name: String,
    pub title: String,
    /// The lab sheet's questions the walkthrough and README answer.
    pub questions: Vec<String>,
    /// The same, in French (`ipclab lab N --lang fr`).
    pub questions_fr: Vec<String>,
    /// Reference programs (each a `[[bin]]` of Cargo.toml, with a bin/ header).
    pub binaries: Vec<String>,
    /// The libc calls the lab is about, as a student would write them.
    pub teaches: Vec<String>,
    /// The same, as syscalls strace prints (both variants where libc may use either).
    pub strace_filter: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// Arguments appended to the implementation's command; `{N}` and `{DIR}` are substituted.
    pub args: Vec<String>,
    /// What stdout must hold, in words.
    pub stdout: String,
    /// Wall-clock budget for one run.
    pub time_budget_ms: u64,
    /// How long a child may stay a zombie while main lives before it counts as "never reaped".
    pub zombie_grace_ms: u64,
    /// After main exits, how long the rest of the tree may take to end before it is killed.
    #[serde(default = "default_linger")]
    pub linger_ms: u64,
    /// Processes one run may have at once (pids cgroup, else RLIMIT_NPROC).
    #[serde(default = "default_max_procs")]
    pub max_procs: u64,
    /// Bytes of stdout and of stderr kept; the rest is drained and counted.
    #[serde(default = "default_output_cap")]
    pub output_cap_bytes: usize,
    /// Address space of each process of the box (RLIMIT_AS), in MiB.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
    /// Largest file a process of the box may write (RLIMIT_FSIZE), in MiB.
    #[serde(default = "default_file_size_mb")]
    pub file_size_mb: u64,
    /// The box's tmpfs (its cwd, DIR, /tmp and /dev/shm together), in MiB.
    #[serde(default = "default_box_mb")]
    pub box_mb: u64,
    /// The reference program run as main instead of the implementation (lab 4: the lab 3
    /// watchdog); the implementation then plays `roles`, passed to it as `--ROLE 'IMPL ROLE'`.
    #[serde(default)]
    pub supervisor: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Bounds the grader waits for (how soon a restart must be logged...), by name, each with
    /// the reason for its value; the README's contract states them.
    #[serde(default)]
    pub bounds: BTreeMap<String, Bound>,
    /// Ranges of the random parameters, by name.
    pub params: BTreeMap<String, Range>,
    /// Points per check, by stable check name.
    pub points: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bound {
    pub ms: u64,
    /// Why this value (its formula, and the margin for a loaded machine).
    pub why: String,
}

impl Contract {
    /// Bound `name` in ms, or `default` where the contract states none.
    pub fn bound_ms(&self, name: &str, default: u64) -> u64 {
        self.bounds.get(name).map_or(default, |b| b.ms)
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    pub min: u64,
    pub max: u64,
    /// The value `ipclab trace` uses (default: min).
    pub trace: Option<u64>,
}

fn default_linger() -> u64 {
    500
}
fn default_max_procs() -> u64 {
    64
}
fn default_output_cap() -> usize {
    1 << 20
}
fn default_memory_mb() -> u64 {
    2048
}
fn default_file_size_mb() -> u64 {
    64
}
fn default_box_mb() -> u64 {
    256
}

impl Spec {
    pub fn dir_name(&self) -> String {
        format!("lab{}-{}", self.lab.number, self.lab.name)
    }
}

/// All specs, parsed; a malformed spec is a build defect, reported with its directory.
pub fn all() -> Result<Vec<Spec>> {
    dirs().into_iter().map(load).collect()
}

/// The spec in `labs/<dir>/spec.toml`.
pub fn load(dir: &str) -> Result<Spec> {
    let text = file(dir, "spec.toml")
        .ok_or_else(|| Error::runtime(format!("labs/{dir}/spec.toml: not shipped")))?;
    toml::from_str::<Spec>(text)
        .map_err(|e| Error::runtime(format!("labs/{dir}/spec.toml: {}", e.message())))
}

/// The spec of lab `n`, or a usage error listing the labs there are.
pub fn find(n: u32) -> Result<Spec> {
    let specs = all()?;
    let numbers: Vec<String> = specs.iter().map(|s| s.lab.number.to_string()).collect();
    specs
        .into_iter()
        .find(|s| s.lab.number == n)
        .ok_or_else(|| Error::usage(format!("no lab {n}: labs are {}", numbers.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every spec parses and lives in the directory its number and name say.
    #[test]
    fn specs_parse_and_match_their_directory() {
        let specs = all().unwrap();
        let dirs = dirs();
        assert_eq!(specs.len(), dirs.len());
        for (spec, dir) in specs.iter().zip(dirs) {
            assert_eq!(&spec.dir_name(), dir);
            assert!(!spec.lab.binaries.is_empty() && !spec.lab.teaches.is_empty());
        }
        assert_eq!(find(999).unwrap_err().code(), 2);
    }
}
