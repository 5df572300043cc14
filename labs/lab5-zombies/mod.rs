//! Lab 5, zombies, reaping and orphans: the lab's code. Its judge (`grade.rs`), its walkthrough
//! (`walk.rs`).

mod grade;
mod walk;

use crate::grade::{Evidence, Gradable, JudgeOnly, Scenario, Setup};
use crate::trace::{Params, TraceRun, Tracer};

pub struct Lab5;
pub static LAB: Lab5 = Lab5;

impl crate::spec::Folder for Lab5 {
    fn dir(&self) -> &'static str {
        "lab5-zombies"
    }
}

impl Gradable for Lab5 {
    fn scenario(&self, _: &Setup) -> Box<dyn Scenario> {
        Box::new(JudgeOnly(|e: &Evidence| {
            grade::judge(e.out, e.param("M"), e.contract, e.timeout_s)
        }))
    }
}

impl crate::trace::Traceable for Lab5 {
    fn roots(&self) -> &'static [&'static str] {
        &["reaper", "zombie", "orphan"]
    }
    fn children(&self, role: &str, p: &Params) -> Vec<String> {
        let m = p.get("M").copied().unwrap_or(0);
        match role {
            "reaper" => (1..=m).map(|i| format!("child-{i}")).collect(),
            "zombie" => vec!["zombie-child".into()],
            "orphan" => vec!["orphan-child".into()],
            "orphan-child" => vec!["grandchild".into()],
            _ => vec![],
        }
    }
    /// The reference's trace also shows the lab's other two programs.
    fn scenario(&self, t: &Tracer, run: &TraceRun) -> crate::Result<()> {
        t.run(&run.argv(""))?;
        if run.reference {
            for (bin, args) in [("zombie", &[][..]), ("orphan", &["--subreaper"][..])] {
                let mut argv = vec![crate::process::sibling_binary(bin)?.display().to_string()];
                argv.extend(args.iter().map(|a| a.to_string()));
                t.run(&argv)?;
            }
        }
        Ok(())
    }
}

impl crate::walkthrough::Walkable for Lab5 {
    fn walk(&self, w: &mut crate::walkthrough::Walk) -> crate::Result<()> {
        walk::walk(w)
    }
}

impl crate::labs::Lab for Lab5 {
    fn grading(&self) -> Option<&dyn Gradable> {
        Some(self)
    }
}
