//! Lab 6's run: five commands on one DIR, the daemon inspected from outside between them.

use super::grade as lab6;
use crate::error::{Error, Result};
use crate::grade::{harness, interrupted_error, report, RunEnv, RunResult};
use crate::sandbox::BoxDir;
use nix::unistd::Pid;
use std::time::Duration;

pub fn run(env: &RunEnv) -> Result<RunResult> {
    let (c, rs, timeout_s) = (env.contract, env.seed, env.timeout_s);
    let root = env.new_box()?;
    let launch = |action: &str| -> Result<harness::Launch> {
        let mut argv = env.args.to_vec();
        for a in &c.args {
            argv.push(
                a.replace("{ACTION}", action)
                    .replace("{DIR}", &root.dir().display().to_string()),
            );
        }
        let mut l = env.launch(argv, &root)?;
        l.use_ptrace = false;
        l.keep_survivors = true;
        Ok(l)
    };
    let mut steps: Vec<Option<harness::Outcome>> = Vec::new();
    let mut facts = None;
    let mut stop = lab6::StopFacts::default();
    let mut daemon: Option<i32> = None;
    let mut strays: Vec<i32> = Vec::new();
    for (n, action) in lab6::STEPS.iter().enumerate() {
        if steps.iter().any(|s| s.as_ref().is_none_or(|x| x.timed_out)) {
            steps.push(None);
            continue;
        }
        let mut out =
            harness::run(&launch(action)?).map_err(|e| Error::runtime(e.0).with_code(3))?;
        if let Some(sig) = out.interrupted {
            // The daemon left running by an earlier step is outside this step's tree: it goes
            // with the box too (the sweep would find it by its uid otherwise).
            for pid in daemon.iter().chain(&strays).chain(&out.survivors) {
                let _ =
                    crate::process::signal(Pid::from_raw(*pid), nix::sys::signal::Signal::SIGKILL);
            }
            let _ = crate::process::reap_children_within(Duration::from_secs(5));
            return Err(interrupted_error(sig));
        }
        let mut new: Vec<i32> = out
            .survivors
            .iter()
            .copied()
            .filter(|p| Some(*p) != daemon)
            .collect();
        if n > 0 {
            // After start, nothing new should stay; one ending just after its launcher (a
            // refused daemon telling it so, then exiting) is not a leftover: it has the
            // contract's linger time to go.
            new = still_running_after(&new, Duration::from_millis(c.linger_ms));
        }
        out.survivors = new.clone();
        if n == 0 {
            daemon = new.first().copied();
            facts = daemon.map(|d| {
                crate::grade::daemonized::inspect(d, &root.dir().join("daemon.pid"), &out)
            });
            strays.extend(new.iter().skip(1));
        } else {
            strays.extend(new);
        }
        if n == 3 {
            if let Some(d) = daemon {
                // The daemon is our child (we are the subreaper): this step may have reaped it.
                let reaped = out.procs.get(&d).filter(|p| p.gone).and_then(|p| p.status);
                stop = match reaped {
                    Some(raw) => lab6::StopFacts {
                        alive_after_stop: false,
                        daemon_status: Some(if raw & 0x7f == 0 {
                            (raw >> 8) & 0xff
                        } else {
                            128 + (raw & 0x7f)
                        }),
                    },
                    None => lab6::after_stop(d),
                };
            }
        }
        steps.push(Some(out));
    }
    // Whatever still runs now is a leftover: killed and reaped, so the machine stays clean.
    let mut leftovers = Vec::new();
    for pid in strays
        .into_iter()
        .chain(daemon.filter(|_| stop.daemon_status.is_none()))
    {
        if crate::inspect::info(pid).is_some_and(|i| !i.is_zombie()) {
            leftovers.push((
                pid,
                crate::inspect::info(pid)
                    .map(|i| i.comm)
                    .unwrap_or_default(),
            ));
        }
        let _ = crate::process::signal(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    let _ = crate::process::reap_children_within(Duration::from_secs(5));
    let checks = lab6::judge(
        &steps,
        facts.as_ref(),
        &stop,
        &leftovers,
        &root.dir(),
        c,
        timeout_s,
    );
    let mut protections = env.protections(&root);
    protections.extend(
        steps
            .iter()
            .flatten()
            .next()
            .map(|x| x.protections.clone())
            .unwrap_or_default(),
    );
    let environment = launch(lab6::STEPS[0])?
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let failed = checks.iter().any(|c| !c.passed);
    let transcript = if failed {
        let mut t = tf!(
            "lab 6, seed {rs}\nreplay this run: {}\n",
            "lab 6, graine {rs}\nrejouer cette exécution : {}\n",
            env.replay
        );
        for (n, s) in steps.iter().enumerate() {
            if let Some(s) = s {
                let survivors: Vec<String> = s.survivors.iter().map(|p| p.to_string()).collect();
                let stdout: Vec<&str> = s.stdout_lines.iter().map(|(_, l)| l.as_str()).collect();
                t.push_str(&tf!("\n-- step {} `{}`: {}; still running after it: {}\nstdout:\n{}\nstderr:\n{}\n", "\n-- étape {} `{}` : {} ; encore en marche après elle : {}\nstdout :\n{}\nstderr :\n{}\n",
                    n + 1,
                    lab6::STEPS[n],
                    s.main_status
                        .map_or(tf!("did not end", "n'a pas fini"), |st| crate::process::describe(&st)),
                    if survivors.is_empty() { tf!("nothing", "rien") } else { survivors.join(", ") },
                    stdout.join("\n"),
                    String::from_utf8_lossy(&s.stderr)
                ));
            }
        }
        t.push_str(&tf!("\n-- the daemon, seen from outside after start\n{}\nafter stop: {}\n\n-- checks\n", "\n-- le démon, vu de l'extérieur après start\n{}\naprès stop : {}\n\n-- vérifications\n",
                facts
                    .as_ref()
                    .map_or(tf!("no daemon was left running", "aucun démon n'est resté en marche"), |f| f.describe()),
                match (stop.alive_after_stop, stop.daemon_status) {
                    (_, Some(n)) => tf!("it exited with status {n}", "il a fini avec le statut {n}"),
                    (true, None) => tf!("it was still running", "il tournait encore"),
                    (false, None) => tf!("its end was not seen", "sa fin n'a pas été vue"),
                }
            ));
        for c in &checks {
            t.push_str(&format!(
                "{} {}: {}\n",
                if c.passed { "OK  " } else { "FAIL" },
                c.name,
                c.detail
            ));
        }
        env.transcript(&t)
    } else {
        None
    };
    let tracking =
        "/proc polling and subreaper (a daemon must outlive its launcher: no ptrace)".to_string();
    Ok(RunResult {
        run: report::Run {
            seed: rs,
            params: serde_json::Map::new(),
            checks,
            wall_ms: steps
                .iter()
                .flatten()
                .map(|s| s.wall.as_millis() as u64)
                .sum(),
            tracking,
            transcript,
            left_in_cwd: BoxDir::entries(&root.cwd()),
            left_in_box: env.left_in_box(&root),
        },
        protections,
        environment,
    })
}

/// Those of `pids` (our children: we are their subreaper) still running once `linger` has
/// passed; the others are reaped.
fn still_running_after(pids: &[i32], linger: Duration) -> Vec<i32> {
    let deadline = std::time::Instant::now() + linger;
    let mut left = Vec::new();
    for &pid in pids {
        let Ok(fd) = crate::process::pidfd_open(Pid::from_raw(pid)) else {
            continue;
        };
        let wait = deadline.saturating_duration_since(std::time::Instant::now());
        let exited = crate::signals::poll_fds(&[std::os::fd::AsFd::as_fd(&fd)], Some(wait))
            .map(|r| r.first() == Some(&true))
            .unwrap_or(false);
        if exited {
            let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
        } else {
            left.push(pid);
        }
    }
    left
}
