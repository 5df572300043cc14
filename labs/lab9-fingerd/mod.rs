//! Lab 9, a finger daemon (the distributed TP sheet's TP 2): the lab's code. Its grading
//! (`grade.rs`: the daemon queried and stopped by the grader, then the client against the
//! grader's server), its walkthrough (`walk.rs`) and what its trace runs.

mod grade;
mod walk;

use crate::error::{Error, Result};
use crate::spec::Contract;
use crate::trace::{until, wait_child, Params, TraceRun, Tracer, PATIENCE};

pub struct Lab9;
pub static LAB: Lab9 = Lab9;

impl crate::spec::Folder for Lab9 {
    fn dir(&self) -> &'static str {
        "lab9-fingerd"
    }
}

/// What `ipclab trace 9` runs (its scenario starts the programs itself).
const TRACE: &str = r#"
args = []
stdout = ""
time_budget_ms = 30000
zombie_grace_ms = 0
linger_ms = 0
max_procs = 16
output_cap_bytes = 0
params = {}
points = {}
"#;

impl crate::trace::Traceable for Lab9 {
    fn roots(&self) -> &'static [&'static str] {
        &["fingerd", "fingercli"]
    }
    fn children(&self, role: &str, _: &Params) -> Vec<String> {
        match role {
            "fingerd" => vec!["middle".into()],
            "middle" => vec!["daemon".into()],
            _ => Vec::new(),
        }
    }
    fn contract(&self) -> Option<Contract> {
        toml::from_str(TRACE).ok()
    }
    /// The daemon started (its launcher, middle process and daemon all traced), one client
    /// asking about root, then SIGTERM to the pid in its pidfile.
    fn scenario(&self, t: &Tracer, run: &TraceRun) -> Result<()> {
        let bin = |b: &str| -> Result<String> {
            Ok(crate::process::sibling_binary(b)?.display().to_string())
        };
        let port = crate::inet::free_port()?;
        let dir = run.dir.display().to_string();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let mut daemon = t.spawn(&s(&[
            &bin("fingerd")?,
            "--port",
            &port.to_string(),
            "--dir",
            &dir,
        ]))?;
        let r = (|| -> Result<()> {
            until("fingerd to listen", || {
                crate::inet::tcp_listening(port).then_some(())
            })?;
            let code = t.run(&s(&[
                &bin("fingercli")?,
                "--login",
                "root",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ]))?;
            if code != 0 {
                return Err(Error::runtime(format!(
                    "the traced fingercli exited {code}"
                )));
            }
            let pid = std::fs::read_to_string(run.dir.join("fingerd.pid"))
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
                .ok_or_else(|| Error::runtime("no pid in fingerd.pid"))?;
            t.signal(pid, nix::sys::signal::Signal::SIGTERM)
        })();
        let end = wait_child(&mut daemon, PATIENCE);
        r.and(end.map(|_| ()))
    }
}

impl crate::walkthrough::Walkable for Lab9 {
    fn walk(&self, w: &mut crate::walkthrough::Walk) -> crate::Result<()> {
        walk::walk(w)
    }
    fn uses_hosts(&self) -> bool {
        true
    }
}

impl crate::grade::Gradable for Lab9 {
    /// Unused: the lab drives its runs (`run`), one launch per role.
    fn scenario(&self, _: &crate::grade::Setup) -> Box<dyn crate::grade::Scenario> {
        Box::new(crate::grade::JudgeOnly(|_| Vec::new()))
    }
    fn run(&self, env: &crate::grade::RunEnv) -> Option<Result<crate::grade::RunResult>> {
        Some(grade::run(env))
    }
}

impl crate::labs::Lab for Lab9 {
    fn grading(&self) -> Option<&dyn crate::grade::Gradable> {
        Some(self)
    }
}
