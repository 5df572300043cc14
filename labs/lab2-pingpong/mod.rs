//! Lab 2, FIFO ping-pong and the shutdown order: the lab's code. Its judge
//! (`grade.rs`), its walkthrough (`walk.rs`); its texts, spec, kits and fixtures are beside them.

mod grade;
mod walk;

use crate::grade::{Evidence, Gradable, JudgeOnly, Scenario, Setup};

pub struct Lab2;
pub static LAB: Lab2 = Lab2;

impl crate::spec::Folder for Lab2 {
    fn dir(&self) -> &'static str {
        "lab2-pingpong"
    }
}

impl Gradable for Lab2 {
    fn scenario(&self, _: &Setup) -> Box<dyn Scenario> {
        Box::new(JudgeOnly(|e: &Evidence| {
            grade::judge(e.out, e.param("N"), e.dir, e.contract, e.timeout_s)
        }))
    }
}

impl crate::trace::Traceable for Lab2 {
    fn children(&self, role: &str, _: &crate::trace::Params) -> Vec<String> {
        match role {
            "main" => vec!["secondary".into()],
            _ => vec![],
        }
    }
}

impl crate::walkthrough::Walkable for Lab2 {
    fn walk(&self, w: &mut crate::walkthrough::Walk) -> crate::Result<()> {
        walk::walk(w)
    }
}

impl crate::labs::Lab for Lab2 {
    fn grading(&self) -> Option<&dyn Gradable> {
        Some(self)
    }
}
