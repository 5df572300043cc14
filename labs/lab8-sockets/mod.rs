//! Lab 8, UDP and TCP client–server (the distributed TP sheet's TP 1): the lab's code. Its
//! grading (`grade.rs`: each role in turn, the grader playing the other side), its walkthrough
//! (`walk.rs`) and what its trace runs.

mod grade;
mod walk;

use crate::error::{Error, Result};
use crate::spec::Contract;
use crate::trace::{tracee, until, wait_child, Params, TraceRun, Tracer, PATIENCE};

pub struct Lab8;
pub static LAB: Lab8 = Lab8;

impl crate::spec::Folder for Lab8 {
    fn dir(&self) -> &'static str {
        "lab8-sockets"
    }
}

/// What `ipclab trace 8` runs (its scenario starts the programs itself).
const TRACE: &str = r#"
args = []
stdout = ""
time_budget_ms = 30000
zombie_grace_ms = 0
linger_ms = 0
max_procs = 8
output_cap_bytes = 0
params = {}
points = {}
"#;

/// A datagram longer than the traced server's 16-byte buffer.
pub const LONG: &str = "a datagram longer than the buffer";

impl crate::trace::Traceable for Lab8 {
    fn roots(&self) -> &'static [&'static str] {
        &[
            "udp-server",
            "udp-client",
            "udp-client-2",
            "udp-client-3",
            "tcp-server",
            "tcp-client",
        ]
    }
    fn children(&self, _: &str, _: &Params) -> Vec<String> {
        Vec::new()
    }
    fn contract(&self) -> Option<Contract> {
        toml::from_str(TRACE).ok()
    }
    /// A UDP server with a 16-byte buffer: a short datagram, a long one (cut), one sent to a
    /// port nobody holds (refused); then a TCP server and one client, which closes first.
    fn scenario(&self, t: &Tracer, _: &TraceRun) -> Result<()> {
        let bin = |b: &str| -> Result<String> {
            Ok(crate::process::sibling_binary(b)?.display().to_string())
        };
        let (udp, tcp, closed) = (
            crate::inet::free_port()?,
            crate::inet::free_port()?,
            crate::inet::free_port()?,
        );
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let mut server = t.spawn(&s(&[
            &bin("udp-server")?,
            "--port",
            &udp.to_string(),
            "--buffer",
            "16",
        ]))?;
        let r = (|| -> Result<()> {
            until("the UDP server to bind", || {
                crate::inet::udp_bound(udp).then_some(())
            })?;
            let client = bin("udp-client")?;
            for msg in ["hello", LONG] {
                let code = t.run(&s(&[&client, "--port", &udp.to_string(), "--message", msg]))?;
                if code != 0 {
                    return Err(Error::runtime(format!(
                        "the traced udp-client exited {code}"
                    )));
                }
            }
            t.run(&s(&[&client, "--port", &closed.to_string(), "--connect"]))?;
            stop(t, &server)
        })();
        let end = wait_child(&mut server, PATIENCE);
        r.and(end.map(|_| ()))?;

        let mut server = t.spawn(&s(&[&bin("tcp-server")?, "--port", &tcp.to_string()]))?;
        let r = (|| -> Result<()> {
            until("the TCP server to listen", || {
                crate::inet::tcp_listening(tcp).then_some(())
            })?;
            let code = t.run(&s(&[
                &bin("tcp-client")?,
                "--port",
                &tcp.to_string(),
                "--message",
                "hello",
            ]))?;
            if code != 0 {
                return Err(Error::runtime(format!(
                    "the traced tcp-client exited {code}"
                )));
            }
            stop(t, &server)
        })();
        let end = wait_child(&mut server, PATIENCE);
        r.and(end.map(|_| ()))
    }
}

fn stop(t: &Tracer, strace: &std::process::Child) -> Result<()> {
    let pid = tracee(strace).ok_or_else(|| Error::runtime("the server is gone"))?;
    t.signal(pid, nix::sys::signal::Signal::SIGTERM)
}

impl crate::walkthrough::Walkable for Lab8 {
    fn walk(&self, w: &mut crate::walkthrough::Walk) -> crate::Result<()> {
        walk::walk(w)
    }
    fn uses_hosts(&self) -> bool {
        true
    }
}

impl crate::grade::Gradable for Lab8 {
    /// Unused: the lab drives its runs (`run`), one launch per role.
    fn scenario(&self, _: &crate::grade::Setup) -> Box<dyn crate::grade::Scenario> {
        Box::new(crate::grade::JudgeOnly(|_| Vec::new()))
    }
    fn run(&self, env: &crate::grade::RunEnv) -> Option<Result<crate::grade::RunResult>> {
        Some(grade::run(env))
    }
}

impl crate::labs::Lab for Lab8 {
    fn grading(&self) -> Option<&dyn crate::grade::Gradable> {
        Some(self)
    }
}
