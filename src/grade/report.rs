//! Grade reports: text (xv6 gradelib style), JSON (the contract in the design notes), TAP 14,
//! JUnit (quick-junit) and Gradescope's results.json.

use serde::Serialize;
use std::fmt::Write as _;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub skipped: bool,
    pub detail: String,
    pub points: u32,
    #[serde(skip)]
    pub max_points: u32,
    #[serde(skip)]
    pub secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub seed: u64,
    pub params: serde_json::Map<String, serde_json::Value>,
    pub checks: Vec<Check>,
    pub wall_ms: u64,
    pub tracking: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
    /// Files the implementation left in its scratch cwd: reported, not judged.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_in_cwd: Vec<String>,
    /// What it left elsewhere in the box (/tmp, /dev/shm, System V objects): reported, not judged.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_in_box: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LabReport {
    pub contract_version: u32,
    pub lab: u32,
    pub seed: u64,
    pub passed: bool,
    pub score: u32,
    pub max_score: u32,
    pub implementation: String,
    pub race: bool,
    pub protections: Vec<String>,
    /// The whole environment the program got (NAME=value).
    pub environment: Vec<String>,
    pub runs: Vec<Run>,
    pub checks: Vec<Check>,
}

impl LabReport {
    /// Top-level checks aggregate the runs: passed only if passed in every run; skipped only if
    /// skipped in every run; the detail of the first run where it did not pass.
    pub fn aggregate(&mut self) {
        let Some(first) = self.runs.first() else {
            return;
        };
        let mut checks = Vec::new();
        for c in &first.checks {
            let all: Vec<&Check> = self
                .runs
                .iter()
                .filter_map(|r| r.checks.iter().find(|x| x.name == c.name))
                .collect();
            let passed = all.iter().all(|x| x.passed);
            let skipped = all.iter().all(|x| x.skipped);
            let failing: Vec<(usize, &&Check)> =
                all.iter().enumerate().filter(|(_, x)| !x.passed).collect();
            let detail = match failing.first() {
                None => c.detail.clone(),
                Some((i, x)) if self.runs.len() > 1 => {
                    tf!(
                        "run {} of {} (seed {}) and {} more: {}",
                        "exécution {} sur {} (graine {}) et {} autre(s) : {}",
                        i + 1,
                        self.runs.len(),
                        self.runs[*i].seed,
                        failing.len() - 1,
                        x.detail
                    )
                }
                Some((_, x)) => x.detail.clone(),
            };
            checks.push(Check {
                name: c.name.clone(),
                passed,
                skipped,
                detail,
                points: if passed { c.max_points } else { 0 },
                max_points: c.max_points,
                secs: all.iter().map(|x| x.secs).sum(),
            });
        }
        self.score = checks.iter().map(|c| c.points).sum();
        self.max_score = checks.iter().map(|c| c.max_points).sum();
        self.passed = checks.iter().all(|c| c.passed);
        self.checks = checks;
    }
}

pub fn text(r: &LabReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}",
        tf!(
            "lab {}: {} ({} run(s), seed {}{})",
            "lab {} : {} ({} exécution(s), graine {}{})",
            r.lab,
            r.implementation,
            r.runs.len(),
            r.seed,
            if r.race { ", --race" } else { "" }
        )
    );
    if let Some(run) = r.runs.first() {
        let _ = writeln!(s, "   {}", tf!("tracking: {}", "suivi : {}", run.tracking));
    }
    for p in &r.protections {
        let _ = writeln!(s, "   {p}");
    }
    if !r.environment.is_empty() {
        let _ = writeln!(
            s,
            "   {}",
            tf!(
                "environment: {}",
                "environnement : {}",
                r.environment.join(" ")
            )
        );
    }
    for c in &r.checks {
        let verdict = if c.passed {
            "OK"
        } else if c.skipped {
            "SKIP"
        } else {
            "FAIL"
        };
        let _ = writeln!(
            s,
            "== lab{}: {} == {verdict} ({:.1}s)",
            r.lab, c.name, c.secs
        );
        if !c.passed {
            let _ = writeln!(s, "   {}", c.detail);
        }
    }
    for run in r.runs.iter().filter(|x| !x.left_in_cwd.is_empty()) {
        let _ = writeln!(
            s,
            "   {}",
            tf!(
                "note (not judged): seed {} left {} in its cwd",
                "remarque (non jugée) : la graine {} a laissé {} dans son répertoire courant",
                run.seed,
                run.left_in_cwd.join(", ")
            )
        );
    }
    for run in r.runs.iter().filter(|x| !x.left_in_box.is_empty()) {
        let _ = writeln!(
            s,
            "   {}",
            tf!(
                "note (not judged): seed {} left {} in the box (removed with it)",
                "remarque (non jugée) : la graine {} a laissé {} dans la boîte (supprimé avec elle)",
                run.seed,
                run.left_in_box.join(", ")
            )
        );
    }
    for run in r.runs.iter().filter(|x| x.transcript.is_some()) {
        let _ = writeln!(
            s,
            "   {}",
            tf!(
                "transcript of seed {}: {}",
                "transcription de la graine {} : {}",
                run.seed,
                run.transcript.as_deref().unwrap_or("")
            )
        );
    }
    let _ = writeln!(s, "Score: {}/{}", r.score, r.max_score);
    s
}

pub fn json(r: &LabReport) -> serde_json::Value {
    serde_json::to_value(r).unwrap_or_default()
}

pub fn tap(reports: &[LabReport]) -> String {
    let total: usize = reports.iter().map(|r| r.checks.len()).sum();
    let mut s = format!("TAP version 14\n1..{total}\n");
    let mut i = 0;
    for r in reports {
        for c in &r.checks {
            i += 1;
            let name = format!("lab{}: {}", r.lab, c.name);
            if c.skipped {
                let _ = writeln!(s, "ok {i} - {name} # SKIP {}", one_line(&c.detail));
            } else if c.passed {
                let _ = writeln!(s, "ok {i} - {name}");
            } else {
                let _ = writeln!(s, "not ok {i} - {name}");
                let _ = writeln!(
                    s,
                    "  ---\n  message: {}\n  points: 0/{}\n  ...",
                    yaml_str(&c.detail),
                    c.max_points
                );
            }
        }
    }
    s
}

pub fn junit(reports: &[LabReport]) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut report = Report::new("ipclab-grade");
    for r in reports {
        let mut suite = TestSuite::new(format!("lab{}", r.lab));
        for c in &r.checks {
            let mut status = if c.skipped {
                TestCaseStatus::skipped()
            } else if c.passed {
                TestCaseStatus::success()
            } else {
                TestCaseStatus::non_success(NonSuccessKind::Failure)
            };
            if !c.passed {
                status.set_message(one_line(&c.detail));
            }
            let mut case = TestCase::new(c.name.clone(), status);
            case.set_classname(format!("lab{}", r.lab));
            case.set_time(std::time::Duration::from_secs_f64(c.secs));
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report.to_string().unwrap_or_default()
}

pub fn gradescope(reports: &[LabReport]) -> serde_json::Value {
    let mut tests = Vec::new();
    for r in reports {
        for c in &r.checks {
            tests.push(serde_json::json!({
                "name": format!("lab{}: {}", r.lab, c.name),
                "score": c.points,
                "max_score": c.max_points,
                "status": if c.passed { "passed" } else { "failed" },
                "output": if c.skipped { tf!("skipped: {}", "non jugé : {}", c.detail) } else { c.detail.clone() },
            }));
        }
    }
    let score: u32 = reports.iter().map(|r| r.score).sum();
    let max: u32 = reports.iter().map(|r| r.max_score).sum();
    serde_json::json!({"score": score, "max_score": max, "tests": tests})
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

fn yaml_str(s: &str) -> String {
    serde_json::to_string(&one_line(s)).unwrap_or_default()
}
