//! Lab 1, POSIX shared memory between a main and a secondary server: the lab's code. Its judge
//! (`grade.rs`), its walkthrough (`walk.rs`); its texts, spec, kits and fixtures are beside them.

mod grade;
mod walk;

use crate::grade::{Evidence, Gradable, JudgeOnly, Scenario, Setup};

pub struct Lab1;
pub static LAB: Lab1 = Lab1;

impl crate::spec::Folder for Lab1 {
    fn dir(&self) -> &'static str {
        "lab1-shm"
    }
}

impl Gradable for Lab1 {
    fn scenario(&self, _: &Setup) -> Box<dyn Scenario> {
        Box::new(JudgeOnly(|e: &Evidence| {
            grade::judge(
                e.out,
                e.params,
                e.shm_prefix.unwrap_or(""),
                e.leaked,
                e.contract,
                e.timeout_s,
            )
        }))
    }
}

impl crate::trace::Traceable for Lab1 {
    fn children(&self, role: &str, _: &crate::trace::Params) -> Vec<String> {
        match role {
            "main" => vec!["secondary".into()],
            _ => vec![],
        }
    }
}

impl crate::walkthrough::Walkable for Lab1 {
    fn walk(&self, w: &mut crate::walkthrough::Walk) -> crate::Result<()> {
        walk::walk(w)
    }
}

impl crate::labs::Lab for Lab1 {
    fn grading(&self) -> Option<&dyn Gradable> {
        Some(self)
    }
}
