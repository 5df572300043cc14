//! `ipclab doctor`: can the labs run here, which grading protections are in force, and what will
//! differ from the lab text.

use crate::{fifo, process, shm};

/// One finding: `ok`, `warn` (labs run, something differs) or `FAIL` (a lab cannot run).
pub struct Finding {
    pub level: &'static str,
    pub what: String,
}

pub fn examine() -> Vec<Finding> {
    let mut out = Vec::new();
    let mut push = |level, what: String| out.push(Finding { level, what });

    let uid = nix::unistd::getuid();
    push(
        "ok",
        format!(
            "running as uid {uid}{}",
            if uid.is_root() {
                " (root: students will not be; run the labs as another user too)"
            } else {
                ""
            }
        ),
    );

    let name = shm::unique_name("ipclab-doctor");
    match shm::Segment::create(&name, 4096) {
        Ok(_seg) => push(
            "ok",
            "/dev/shm: shm_open(O_CREAT|O_EXCL, 0600) and shm_unlink work".into(),
        ),
        Err(e) => push("FAIL", format!("/dev/shm: {e}")),
    }

    match fifo::private_dir()
        .and_then(|d| fifo::FifoPair::create(d.path(), "ping", "pong").map(|_| ()))
    {
        Ok(()) => push(
            "ok",
            "FIFOs: mkfifo 0600 in a private 0700 directory works".into(),
        ),
        Err(e) => push("FAIL", format!("FIFOs: {e}")),
    }

    let was = process::is_child_subreaper();
    match process::set_child_subreaper() {
        Ok(()) => {
            if !was {
                let _ = process::clear_child_subreaper();
            }
            push("ok", "prctl(PR_SET_CHILD_SUBREAPER) works".into());
        }
        Err(e) => push("FAIL", format!("subreaper: {e}")),
    }

    match process::pidfd_open(nix::unistd::getpid()) {
        Ok(_) => push("ok", "pidfd_open works".into()),
        Err(e) => push("FAIL", format!("pidfd_open (Linux >= 5.3 needed): {e}")),
    }

    match crate::trace::strace_usable() {
        Ok(v) => push("ok", format!("strace: {v}, ptrace allowed")),
        Err(why) => push(
            "warn",
            format!("strace: {why}; walkthroughs skip their strace steps"),
        ),
    }
    let pid1 = crate::inspect::info(1)
        .map(|p| p.comm)
        .unwrap_or_else(|| "?".into());
    match pid1_reaping() {
        Some(ms) => push("ok", format!("PID 1 ({pid1}) reaped an orphan after {ms} ms: the grader and walkthroughs are subreapers, so they never wait for it")),
        None => push("warn", format!("PID 1 ({pid1}) did not reap an orphan within 5 s: never rely on it (the grader reaps what it adopts)")),
    }

    // The distributed labs' hosts.
    for f in hosts_findings(uid.is_root()) {
        out.push(f);
    }
    let mut push = |level, what: String| out.push(Finding { level, what });

    // Grading protections.
    match ptrace_probe() {
        Ok(()) => push(
            "ok",
            "grading: ptrace allowed: the tree is followed by fork/exec/exit events".into(),
        ),
        Err(why) => push(
            "warn",
            format!("grading: ptrace refused ({why}): the grader falls back to /proc polling"),
        ),
    }
    let powers = crate::sandbox::powers();
    if powers.drop_uid {
        push(
            "ok",
            format!(
                "grading: each box runs as its own leased uid ({}..={}), never root",
                crate::sandbox::UID_FIRST,
                crate::sandbox::UID_LAST
            ),
        );
        match crate::grade::cgroup::PidsCgroup::create(8, 9999) {
            Ok(cg) => push("ok", format!("grading: process bound and whole-box kill by a {}", cg.describe())),
            Err(why) => push("warn", format!("grading: no pids cgroup ({why}); RLIMIT_NPROC on the box's uid bounds processes, and processes that leave the ptrace tree may escape")),
        }
    } else if uid.is_root() {
        push(
            "warn",
            "grading: root without CAP_SETUID/CAP_SETGID: programs would run as root".into(),
        );
    } else if powers.userns {
        push(
            "ok",
            "grading as a normal user: the program runs as you in its own user, PID, network and \
             IPC namespaces (kill(-1) reaches only the box, which sees no other process to \
             name; loopback only), bounded by rlimits, with a fixed environment and no \
             inherited descriptor, under a grader it cannot ptrace; no own uid, no cgroup, \
             shared /tmp and /dev/shm, the checkout visible (grade as root for the full box)"
                .into(),
        );
    } else {
        push(
            "warn",
            "grading as a normal user: the program runs as you, bounded by rlimits (CPU, \
             processes, file size, memory), in its own session, with a fixed environment and \
             no inherited descriptor; no own uid, no namespaces, no cgroup, shared /tmp and \
             /dev/shm: a program can signal or ptrace your other processes (grade as root for \
             the full box)"
                .into(),
        );
    }
    if powers.namespaces {
        push(
            "ok",
            "grading: fresh network, IPC and mount namespaces per run; cwd, DIR, /tmp and \
             /dev/shm on the box's own tmpfs; the checkout hidden"
                .into(),
        );
    } else if uid.is_root() {
        push(
            "warn",
            "grading: root without CAP_SYS_ADMIN (a default container): no namespaces, no \
             private /tmp or /dev/shm, the checkout visible"
                .into(),
        );
    }
    let cg = if std::path::Path::new("/sys/fs/cgroup/pids/cgroup.procs").exists() {
        "v1 (pids controller mounted)"
    } else if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "v2"
    } else {
        "none found"
    };
    push("ok", format!("cgroups: {cg}"));
    out
}

/// How long PID 1 takes to reap an orphaned zombie (None: not within 5 s). Observation only:
/// nothing tells another process when PID 1 reaps.
fn pid1_reaping() -> Option<u128> {
    let was = process::is_child_subreaper();
    if was {
        let _ = process::clear_child_subreaper();
    }
    let out = std::process::Command::new("sh")
        .args(["-c", "true & echo $!"])
        .output();
    if was {
        let _ = process::set_child_subreaper();
    }
    let pid: i32 = String::from_utf8_lossy(&out.ok()?.stdout)
        .trim()
        .parse()
        .ok()?;
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(5) {
        if crate::inspect::info(pid).is_none() {
            return Some(t0.elapsed().as_millis());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    None
}

/// PTRACE_SEIZE on a child of ours, then let it go.
fn ptrace_probe() -> Result<(), String> {
    let mut child = std::process::Command::new("cat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start a probe: {e}"))?;
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let r =
        nix::sys::ptrace::seize(pid, nix::sys::ptrace::Options::empty()).map_err(|e| e.to_string());
    if r.is_ok() {
        let _ = nix::sys::ptrace::detach(pid, None);
    }
    drop(child.stdin.take());
    let _ = child.wait();
    r
}

/// What the distributed labs (8–15) can use here: namespace hosts, and which faults.
fn hosts_findings(root: bool) -> Vec<Finding> {
    let have = |p: &str| std::path::Path::new(p).exists();
    let mut v = Vec::new();
    let mut push = |level, what: String| v.push(Finding { level, what });
    if let Some(c) = crate::hosts::Cluster::current() {
        push(
            "ok",
            format!(
                "hosts: up ({}): ipclab hosts down removes them",
                c.names().join(" ")
            ),
        );
    }
    // What a normal user's hosts stand on: a user namespace of their own with the others in it.
    let userns = std::process::Command::new("unshare")
        .args([
            "--user",
            "--map-current-user",
            "--net",
            "--mount",
            "--pid",
            "--fork",
            "--",
            "true",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run unshare: {e}"))
        .and_then(|o| {
            if o.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "refused here: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ))
            }
        });
    let tools = have("/usr/sbin/sshd") && have("/usr/sbin/ip");
    let hosts_ok = tools && (root || userns.is_ok());
    if !tools {
        push(
            "warn",
            "hosts: apt-get install openssh-server iproute2 for namespace hosts (ipclab hosts \
             up); labs 8-15 run as local processes on 127.0.0.0/8 meanwhile"
                .into(),
        );
    } else if root {
        push(
            "ok",
            "hosts: ipclab hosts up K makes h1..hK (network namespaces on a bridge, each with \
             its user and a root sshd on port 22)"
                .into(),
        );
    } else if userns.is_ok() {
        push(
            "ok",
            "hosts: ipclab hosts up K makes h1..hK in a user namespace of yours (you are \
             yourself there, never root): each its network, hostname and PID namespaces, an \
             sshd as you on port 2222, your files shared as over NFS"
                .into(),
        );
    }
    match &userns {
        Ok(()) => push(
            "ok",
            "user namespaces: unshare --user --net works for you: lab 8's wire step makes its \
             two hosts without root"
                .into(),
        ),
        Err(e) => push(
            "warn",
            format!(
                "user namespaces: {e}: no hosts without root, and lab 8's wire step is skipped; \
                 labs 8-15 run as local processes on 127.0.0.0/8"
            ),
        ),
    }
    if hosts_ok {
        push(
            "ok",
            "faults on a host's processes, on a seeded plan (ipclab hosts faults --seed S; \
             --plan-only prints it, --replay FILE applies it again): pause (SIGSTOP, then \
             SIGCONT), crash (SIGKILL), restart (a crash, then each program started again over \
             ssh in its directory)"
                .into(),
        );
    }
    if hosts_ok && have("/usr/sbin/nft") {
        push(
            "ok",
            "faults: partition (ipclab hosts partition A B: nftables drops in the hosts' \
             namespaces; hosts heal)"
                .into(),
        );
        push(
            "ok",
            "faults: message delay between hosts (ipclab hosts relay on --delay h1:h2:50[:JITTER] \
             --seed S: a userspace relay, since the kernel has no netem here; TCP only, every \
             piece recorded with --record FILE)"
                .into(),
        );
    } else {
        push(
            "warn",
            "faults: no partition and no message delay (they need namespace hosts and nft: \
             apt-get install nftables)"
                .into(),
        );
    }
    v
}
