//! `ipclab hosts`: namespace hosts with real sshd, as the distributed labs use them, and the
//! partition fault between them. Needs root
//! and openssh-server (skipped, saying so, otherwise); one bring-up for the whole binary.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

fn ipclab(args: &[&str]) -> std::process::Output {
    run(Command::new(bin("ipclab")).args(args))
}

fn ready() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (network namespaces, sshd)");
        return false;
    }
    if !std::path::Path::new("/usr/sbin/sshd").exists() {
        eprintln!("skipped: openssh-server is not installed");
        return false;
    }
    if ipclab::hosts::Cluster::current().is_some() {
        eprintln!("skipped: hosts are up already on this machine (not ours to take down)");
        return false;
    }
    true
}

/// Takes the hosts down however the test ends.
struct Down;
impl Drop for Down {
    fn drop(&mut self) {
        let _ = ipclab(&["hosts", "down"]);
    }
}

fn netns_of(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/net"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// The pid, as this namespace sees it, of the process numbered `inner` in the PID namespace
/// whose init is `init` (the last field of NSpid is the innermost).
fn host_pid(init: i32, inner: i32) -> Option<i32> {
    let ns = std::fs::read_link(format!("/proc/{init}/ns/pid")).ok()?;
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        if std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()? != ns {
            return None;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let last = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))?
            .split_whitespace()
            .last()?
            .parse::<i32>()
            .ok()?;
        (last == inner).then_some(pid)
    })
}

fn uid_of(pid: i32) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}")).map_or(u32::MAX, |m| m.uid())
}

/// Up, the launcher's `ssh host "cmd"` between hosts, names and hostnames, bad input, down.
#[test]
fn hosts_run_real_sshd_and_leave_nothing() {
    let _forks = fork_guard();
    if !ready() {
        return;
    }
    let _down = Down;
    let out = ipclab(&["hosts", "up", "3"]);
    assert!(out.status.success(), "up: {}", text(&out.stderr));
    let c = ipclab::hosts::Cluster::current().expect("recorded");
    assert_eq!(text(&ipclab(&["hosts", "list"]).stdout), "h1\nh2\nh3\n");
    let sshd: Vec<i32> = c.hosts.iter().map(|h| h.sshd_pid().unwrap()).collect();

    // A process started by `ssh h2 ...` from h1 runs in h2's network namespace, as h2's user,
    // and descends from the sshd listening in h2 (no wrapper: a real login).
    let mut child = Command::new(bin("ipclab"))
        .args([
            "hosts",
            "exec",
            "h1",
            "--",
            "ssh",
            "h2",
            "echo $$; exec cat",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let in_h2: i32 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no pid from ssh h2: {line:?}"));
    // h2 has its own PID namespace, whose init is its sshd: $$ is a pid there.
    let remote = host_pid(sshd[1], in_h2)
        .unwrap_or_else(|| panic!("no process {in_h2} in the PID namespace of h2's sshd"));
    let h2 = c.host("h2").unwrap();
    assert_eq!(
        netns_of(remote),
        format!("net:[{}]", h2.netns_inode().unwrap())
    );
    assert_eq!(uid_of(remote), h2.uid);
    let mut chain = vec![remote];
    let mut p = remote;
    while p > 1 && p != sshd[1] {
        p = ipclab::inspect::info(p).map_or(0, |i| i.ppid);
        chain.push(p);
    }
    assert_eq!(
        p, sshd[1],
        "ssh h2's process descends from {chain:?}, not h2's sshd"
    );
    for q in &chain[1..] {
        assert_eq!(
            netns_of(*q),
            netns_of(remote),
            "{q} of {chain:?} is outside h2"
        );
    }
    child.stdin.take().unwrap().write_all(b"").unwrap();
    let st = child.wait().unwrap();
    assert!(st.success(), "ssh h2 ended with {st}");

    // Names resolve inside the hosts, each knows its own name, the machine file is in the home.
    let out = ipclab(&[
        "hosts",
        "exec",
        "h3",
        "--",
        "sh",
        "-c",
        "hostname; getent hosts h1; cat machines; ssh h1 hostname; \
         ssh h2 'cat /proc/1/comm; sleep 600 </dev/null >/dev/null 2>&1 &'",
    ]);
    // h2's init is its sshd (its own PID namespace); the sleep left running there is a
    // daemon a student forgot, which down must take with it.
    assert_eq!(
        text(&out.stdout),
        "h3\n10.213.0.1      h1\nh1\nh2\nh3\nh1\nsshd\n",
        "{}",
        text(&out.stderr)
    );

    // A partition cuts h1 from h2 and h3 both ways, and nothing else; heal undoes it.
    let reach = |from: &str, to: &str| {
        ipclab(&[
            "hosts",
            "exec",
            from,
            "--",
            "ssh",
            "-o",
            "ConnectTimeout=1",
            to,
            "true",
        ])
        .status
        .success()
    };
    assert!(ipclab(&["hosts", "partition", "h1", "h2,h3"])
        .status
        .success());
    assert!(
        !reach("h1", "h2") && !reach("h3", "h1"),
        "the partition let traffic through"
    );
    assert!(
        reach("h2", "h3") && reach("h1", "h1"),
        "the partition cut more than asked"
    );
    assert!(ipclab(&["hosts", "heal"]).status.success());
    assert!(reach("h1", "h2") && reach("h3", "h1"), "heal left a cut");

    // Bad input: one line, exit 2, nothing changed.
    for args in [
        &["hosts", "up", "0"][..],
        &["hosts", "up", "65"],
        &["hosts", "up", "2"],
        &["hosts", "exec", "h9", "--", "true"],
        &["hosts", "partition", "h1", "h1"],
        &["hosts", "partition", "h1", "h7"],
    ] {
        let out = ipclab(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stderr).lines().count(), 1, "{args:?}");
    }
    assert!(sshd.iter().all(|p| ipclab::inspect::info(*p).is_some()));

    let h2_uid = c.host("h2").unwrap().uid;
    assert!(
        ipclab::sandbox::process_uids()
            .iter()
            .any(|(p, u)| *u == h2_uid
                && std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c == "sleep\n")),
        "the daemon left on h2 is not running"
    );

    // Down: no namespace, no live sshd, no box, lease or process of the hosts' users.
    let out = ipclab(&["hosts", "down"]);
    assert!(out.status.success(), "down: {}", text(&out.stderr));
    let spaces = std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("ipclab-"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(spaces, 0, "namespaces left");
    for p in &sshd {
        assert!(
            ipclab::inspect::info(*p).is_none_or(|i| i.is_zombie()),
            "sshd {p} still running"
        );
    }
    let uids: Vec<u32> = c.hosts.iter().map(|h| h.uid).collect();
    let running: Vec<(i32, u32)> = ipclab::sandbox::process_uids()
        .into_iter()
        .filter(|(_, u)| uids.contains(u))
        .collect();
    // Zombies too: one waiting for a PID 1 that reaps late is still left behind.
    assert!(
        running.is_empty(),
        "processes of host users left (zombies count): {running:?}"
    );
    assert!(ipclab::hosts::Cluster::current().is_none());
    assert!(ipclab::sandbox::Lease::persistent_list()
        .iter()
        .all(|(u, _)| !uids.contains(u)));
    for h in &c.hosts {
        assert!(!std::path::Path::new(&format!("/run/ipclab/host-{}", h.name)).exists());
    }
}

/// A normal user is told plainly that hosts need root, and nothing is made.
#[test]
fn hosts_as_a_normal_user_say_why_not() {
    let _forks = fork_guard();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to become a normal user");
        return;
    }
    let out = run(Command::new("setpriv").args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        bin("ipclab").to_str().unwrap(),
        "hosts",
        "up",
        "2",
    ]));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("needs root"),
        "{}",
        text(&out.stderr)
    );
}
