//! Lab 6, how a process becomes a daemon: the lab's code. Its runs (`run.rs`: five commands on
//! one DIR) and judge (`grade.rs`), the strace scenario (`trace.rs`), the walkthrough
//! (`walk.rs`).

mod grade;
mod run;
mod trace;
mod walk;

use crate::grade::{Gradable, JudgeOnly, RunEnv, RunResult, Scenario, Setup};
use crate::trace::{Params, TraceRun, Tracer};

pub struct Lab6;
pub static LAB: Lab6 = Lab6;

impl crate::spec::Folder for Lab6 {
    fn dir(&self) -> &'static str {
        "lab6-daemon"
    }
}

impl Gradable for Lab6 {
    /// Never asked for: `run` drives every run of lab 6.
    fn scenario(&self, _: &Setup) -> Box<dyn Scenario> {
        Box::new(JudgeOnly(|_| Vec::new()))
    }
    fn run(&self, env: &RunEnv) -> Option<crate::Result<RunResult>> {
        Some(run::run(env))
    }
}

impl crate::trace::Traceable for Lab6 {
    fn roots(&self) -> &'static [&'static str] {
        &["start", "status", "stop"]
    }
    fn children(&self, role: &str, _: &Params) -> Vec<String> {
        match role {
            "start" => vec!["middle".into()],
            "middle" => vec!["daemon".into()],
            _ => vec![],
        }
    }
    fn scenario(&self, t: &Tracer, run: &TraceRun) -> crate::Result<()> {
        trace::scenario(t, &|action| run.argv(action))
    }
}

impl crate::walkthrough::Walkable for Lab6 {
    fn walk(&self, w: &mut crate::walkthrough::Walk) -> crate::Result<()> {
        walk::walk(w)
    }
}

impl crate::labs::Lab for Lab6 {
    fn grading(&self) -> Option<&dyn Gradable> {
        Some(self)
    }
}
