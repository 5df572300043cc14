//! Lab 7, the IPC zoo: the lab's code. No grading contract (a benchmark is measured, not
//! graded): its walkthrough (`walk.rs`) and what its trace runs. The bench itself is
//! `crate::zoo`, shared with `ipclab bench`.

mod walk;

use crate::spec::Contract;
use crate::trace::Params;

pub struct Lab7;
pub static LAB: Lab7 = Lab7;

impl crate::spec::Folder for Lab7 {
    fn dir(&self) -> &'static str {
        "lab7-zoo"
    }
}

/// What `ipclab trace 7` runs: one short bench of a pipe.
const TRACE: &str = r#"
args = ["bench", "--mechanism", "pipe", "--size", "8", "--round-trips", "3", "--no-process-costs"]
stdout = ""
time_budget_ms = 30000
zombie_grace_ms = 0
linger_ms = 0
max_procs = 8
output_cap_bytes = 0
params = {}
points = {}
"#;

impl crate::trace::Traceable for Lab7 {
    fn roots(&self) -> &'static [&'static str] {
        &["bench"]
    }
    fn children(&self, role: &str, _: &Params) -> Vec<String> {
        match role {
            "bench" => vec!["peer".into()],
            _ => vec![],
        }
    }
    fn contract(&self) -> Option<Contract> {
        toml::from_str(TRACE).ok()
    }
}

impl crate::walkthrough::Walkable for Lab7 {
    fn walk(&self, w: &mut crate::walkthrough::Walk) -> crate::Result<()> {
        walk::walk(w)
    }
}

impl crate::labs::Lab for Lab7 {
    fn grading(&self) -> Option<&dyn crate::grade::Gradable> {
        None
    }
}
