//! Lab 4, a client handed to a worker by a dispatcher: the lab's code. The grader's protocol
//! clients (`client.rs`), the phases that drive them (`driver.rs`), the judge (`grade.rs`), the
//! strace scenario (`trace.rs`), the walkthrough (`walk.rs`).

mod client;
mod driver;
mod grade;
mod trace;
mod walk;

use crate::grade::harness::Script;
use crate::grade::{Evidence, Gradable, Scenario, Setup};
use crate::trace::{Params, TraceRun, Tracer};

pub struct Lab4;
pub static LAB: Lab4 = Lab4;

impl crate::spec::Folder for Lab4 {
    fn dir(&self) -> &'static str {
        "lab4-client"
    }
}

/// One run: the driver's clients talk to the dispatcher while it lasts; the judge reads what
/// they were answered.
struct Run(grade::Driver);

impl Scenario for Run {
    fn script(&mut self) -> Option<&mut dyn Script> {
        Some(&mut self.0)
    }
    fn finish(&mut self) {
        self.0.finish();
    }
    fn judge(&mut self, e: &Evidence) -> Vec<crate::grade::report::Check> {
        grade::judge(e.out, &self.0.seen, e.dir, e.contract, e.timeout_s)
    }
}

impl Gradable for Lab4 {
    fn scenario(&self, s: &Setup) -> Box<dyn Scenario> {
        Box::new(Run(grade::Driver::new(
            &s.dir,
            s.param("K", 1),
            s.param("W", 0),
            s.param("C", 1),
            s.seed,
            std::time::Duration::from_millis(s.contract.bound_ms("close_after_resp_ms", 1000)),
        )))
    }
}

impl crate::trace::Traceable for Lab4 {
    fn roots(&self) -> &'static [&'static str] {
        &["watchdog", "client"]
    }
    fn children(&self, role: &str, p: &Params) -> Vec<String> {
        match role {
            "watchdog" => {
                let k = p.get("K").copied().unwrap_or(0);
                let mut v = vec!["dispatcher".to_string()];
                v.extend((1..=k).map(|i| format!("worker-{i}")));
                v
            }
            _ => vec![],
        }
    }
    fn scenario(&self, t: &Tracer, run: &TraceRun) -> crate::Result<()> {
        trace::scenario(t, &run.argv(""), &run.dir)
    }
}

impl crate::walkthrough::Walkable for Lab4 {
    fn walk(&self, w: &mut crate::walkthrough::Walk) -> crate::Result<()> {
        walk::walk(w)
    }
}

impl crate::labs::Lab for Lab4 {
    fn grading(&self) -> Option<&dyn Gradable> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Folder;

    /// Lab 4's contract: the reference watchdog is main; the implementation plays the roles.
    #[test]
    fn lab4_contract_runs_roles_under_the_watchdog() {
        let c = crate::spec::load(LAB.dir()).unwrap().contract.unwrap();
        assert_eq!(c.supervisor.as_deref(), Some("watchdog"));
        assert_eq!(c.roles, ["dispatcher", "worker"]);
        for check in [
            "all-clients-served",
            "busy-reply",
            "malformed-request",
            "worker-crash",
            "no-zombies",
            "no-leftover-processes",
            "no-leaked-files",
        ] {
            assert!(c.points.contains_key(check), "{check} missing");
        }
    }
}
