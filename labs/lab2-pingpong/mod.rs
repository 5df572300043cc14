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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Folder;

    /// Lab 2's contract is the one fixed in the design notes.
    #[test]
    fn lab2_contract_has_the_stable_check_names() {
        let c = crate::spec::load(LAB.dir()).unwrap().contract.unwrap();
        let names: Vec<&str> = c.points.keys().map(|s| s.as_str()).collect();
        for check in [
            "exit-status",
            "protocol",
            "named-pipes",
            "no-zombies",
            "shutdown-order",
            "no-leftover-processes",
            "no-leaked-files",
            "timeout",
        ] {
            assert!(names.contains(&check), "{check} missing");
        }
        assert_eq!(c.args, ["--exchanges", "{N}", "--dir", "{DIR}"]);
    }
}
