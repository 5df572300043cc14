//! Lab 3, a signal-driven watchdog: the lab's code. The grader's fault injector and judge
//! (`grade.rs`), the strace scenario (`trace.rs`), the walkthrough (`walk.rs`).

mod grade;
mod trace;
mod walk;

use crate::grade::harness::Script;
use crate::grade::{Evidence, Gradable, Scenario, Setup};
use crate::trace::{Params, TraceRun, Tracer};

pub struct Lab3;
pub static LAB: Lab3 = Lab3;

impl crate::spec::Folder for Lab3 {
    fn dir(&self) -> &'static str {
        "lab3-watchdog"
    }
}

/// One run: the injector kills and hangs servers while it lasts; the judge reads what it did.
struct Run(grade::Injector);

impl Scenario for Run {
    fn script(&mut self) -> Option<&mut dyn Script> {
        Some(&mut self.0)
    }
    fn judge(&mut self, e: &Evidence) -> Vec<crate::grade::report::Check> {
        grade::judge(
            e.out,
            &self.0.seen,
            e.events,
            e.dir,
            e.contract,
            e.timeout_s,
        )
    }
}

impl Gradable for Lab3 {
    fn scenario(&self, s: &Setup) -> Box<dyn Scenario> {
        Box::new(Run(grade::Injector::new(
            s.param("K", 1),
            s.param("T", 400),
            s.events.clone(),
            s.contract.bound_ms("restart_logged_ms", 2000),
        )))
    }
}

impl crate::trace::Traceable for Lab3 {
    fn roots(&self) -> &'static [&'static str] {
        &["watchdog"]
    }
    fn children(&self, role: &str, p: &Params) -> Vec<String> {
        match role {
            "watchdog" => {
                let k = p.get("K").copied().unwrap_or(0);
                let mut v = vec!["main".to_string()];
                v.extend((1..=k).map(|i| format!("secondary-{i}")));
                v
            }
            _ => vec![],
        }
    }
    fn scenario(&self, t: &Tracer, run: &TraceRun) -> crate::Result<()> {
        let mut argv = run.argv("");
        if run.reference {
            // The heartbeats go through shared memory, invisible to strace: the reference logs
            // them, and the chart draws them from its event log.
            argv.push("--log-beats".into());
        }
        trace::scenario(t, &argv, &run.events, run.param("K") as usize)
    }
}

impl crate::walkthrough::Walkable for Lab3 {
    fn walk(&self, w: &mut crate::walkthrough::Walk) -> crate::Result<()> {
        walk::walk(w)
    }
}

impl crate::labs::Lab for Lab3 {
    fn grading(&self) -> Option<&dyn Gradable> {
        Some(self)
    }
}
