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

    relay_delays_each_link(&c);
    relay_copies_both_ways_at_once(&c);
    links_show_the_ring(&c);
    walkthrough_on_two_hosts(&c);
    faults_follow_their_plan(&c);

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

/// `hosts up --race SEED`: a program started over ssh on h2 has the shim mapped and the seed
/// in its environment (sshd sets them: it passes none of the client's), and `hosts perturbed`
/// lists it under h2's name; hosts made without --race say there is nothing to list.
#[test]
fn hosts_race_perturbs_what_ssh_starts() {
    let _forks = fork_guard();
    if !ready() {
        return;
    }
    let _down = Down;
    let out = ipclab(&["hosts", "up", "2"]);
    assert!(out.status.success(), "up: {}", text(&out.stderr));
    let none = ipclab(&["hosts", "perturbed"]);
    assert_eq!(none.status.code(), Some(2), "{}", text(&none.stderr));
    assert!(ipclab(&["hosts", "down"]).status.success());
    let out = ipclab(&["hosts", "up", "2", "--race", "7"]);
    assert!(out.status.success(), "up --race: {}", text(&out.stderr));
    let out = ipclab(&[
        "hosts",
        "exec",
        "h1",
        "--",
        "ssh",
        "h2",
        "echo seed $IPCLAB_RACE_SEED; cat /proc/self/maps",
    ]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(said.starts_with("seed 7\n"), "{said}");
    assert!(
        said.contains("/race.so"),
        "the shim is not mapped in cat:\n{said}"
    );
    let listed = text(&ipclab(&["hosts", "perturbed"]).stdout);
    let cat: Vec<&str> = listed
        .lines()
        .filter(|l| l.starts_with("h2 ") && l.ends_with(" cat"))
        .collect();
    assert_eq!(cat.len(), 1, "{listed}");
}

/// `ipclab hosts ARGS` as NOBODY (a normal user: no capability, its own state directory).
fn as_user(args: &[&str]) -> std::process::Output {
    let mut c = as_nobody(&bin("ipclab")).expect("root");
    run(c.args(args).env_remove("XDG_RUNTIME_DIR"))
}

/// A normal user's hosts: up in a user namespace of their own; `ssh h2` from h1 reaches h2's
/// sshd (a program it starts descends from that sshd, in h2's network namespace, as the
/// user); names resolve; a partition and the relay work from their nftables; a crash fault
/// kills what runs on h2; down leaves no process and no state directory.
#[test]
fn hosts_as_a_normal_user_run_in_a_user_namespace() {
    let _forks = fork_guard();
    if !nix::unistd::geteuid().is_root() || !std::path::Path::new("/usr/sbin/sshd").exists() {
        eprintln!("skipped: needs root (to become a normal user) and openssh-server");
        return;
    }
    // A kernel that refuses unprivileged user namespaces (a sysctl, an LSM) gives no hosts to
    // a normal user: doctor says so; this test has nothing to try there.
    let userns = as_nobody(std::path::Path::new("/usr/bin/unshare"))
        .unwrap()
        .args(["--user", "--map-current-user", "--net", "--mount", "--pid"])
        .args(["--fork", "true"])
        .output()
        .unwrap();
    if !userns.status.success() {
        eprintln!(
            "skipped: user namespaces refused to a normal user here: {}",
            text(&userns.stderr)
        );
        return;
    }
    let state = std::path::PathBuf::from(format!("/tmp/ipclab-hosts-{NOBODY}"));
    struct UserDown;
    impl Drop for UserDown {
        fn drop(&mut self) {
            let _ = as_user(&["hosts", "down"]);
        }
    }
    let _down = UserDown;
    let out = as_user(&["hosts", "up", "2"]);
    assert!(out.status.success(), "up: {}", text(&out.stderr));
    let again = as_user(&["hosts", "up", "2"]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));
    // "PID START-TIME"
    let keeper: i32 = std::fs::read_to_string(state.join("keeper.pid"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let sshd = |h: &str| -> i32 {
        std::fs::read_to_string(state.join(h).join("sshd.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (s1, s2) = (sshd("h1"), sshd("h2"));
    for p in [keeper, s1, s2] {
        assert_eq!(uid_of(p), NOBODY, "pid {p} is not the user's");
    }
    assert_ne!(netns_of(s1), netns_of(s2));
    assert_ne!(netns_of(s2), netns_of(std::process::id() as i32));
    // The launcher's way: ssh h2 "cd DIR; prog &", from h1, by name.
    let tag = 300 + std::process::id() % 600;
    let out = as_user(&[
        "hosts",
        "exec",
        "h1",
        "--",
        "sh",
        "-c",
        &format!(
            "hostname; getent hosts h2; ssh h2 \"hostname; cd /tmp && nohup sleep {tag} >/dev/null 2>&1 &\""
        ),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.first(), Some(&"h1"), "{said}");
    assert!(
        lines.get(1).is_some_and(|l| l.starts_with("10.213.0.2 ")),
        "{said}"
    );
    assert_eq!(lines.get(2), Some(&"h2"), "{said}");
    let sleeper = ipclab::inspect::all()
        .into_iter()
        .find(|p| {
            p.comm == "sleep"
                && std::fs::read(format!("/proc/{}/cmdline", p.pid))
                    .is_ok_and(|c| c == format!("sleep\0{tag}\0").as_bytes())
        })
        .expect("the program started over ssh on h2");
    // Orphaned when its session ended: adopted by h2's init, the sshd itself.
    assert_eq!(sleeper.ppid, s2, "not a descendant of h2's sshd");
    assert_eq!(netns_of(sleeper.pid), netns_of(s2));
    assert_eq!(uid_of(sleeper.pid), NOBODY);
    // A partition between h1 and h2 from the user's nftables, then healed.
    let ssh_h2 = |timeout: &str| {
        as_user(&[
            "hosts",
            "exec",
            "h1",
            "--",
            "ssh",
            "-o",
            &format!("ConnectTimeout={timeout}"),
            "h2",
            "true",
        ])
    };
    let cut = as_user(&["hosts", "partition", "h1", "h2"]);
    assert!(cut.status.success(), "{}", text(&cut.stderr));
    assert_eq!(ssh_h2("1").status.code(), Some(255), "ssh crossed the cut");
    let heal = as_user(&["hosts", "heal"]);
    assert!(heal.status.success(), "{}", text(&heal.stderr));
    let back = ssh_h2("30");
    assert!(back.status.success(), "{}", text(&back.stderr));
    // The relay: 150 ms on h1 -> h2, the server still seeing h1, every piece recorded.
    let rec_dir = nobody_dir();
    let rec = rec_dir.path().join("wire.jsonl");
    let on = as_user(&[
        "hosts",
        "relay",
        "on",
        "--delay",
        "h1:h2:150",
        "--record",
        rec.to_str().unwrap(),
    ]);
    assert!(on.status.success(), "relay on: {}", text(&on.stderr));
    let at = |pid: i32| std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
    let (ns1, ns2) = (at(s1), at(s2));
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        use std::io::Read;
        nix::sched::setns(&ns2, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let l = std::net::TcpListener::bind(("0.0.0.0", 0)).unwrap();
        tx.send(l.local_addr().unwrap().port()).unwrap();
        let (mut c, peer) = l.accept().unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        c.write_all(&b).unwrap();
        peer
    });
    let port = rx.recv().unwrap();
    let took = std::thread::spawn(move || {
        use std::io::Read;
        nix::sched::setns(&ns1, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let t = std::time::Instant::now();
        let mut s = std::net::TcpStream::connect(("10.213.0.2", port)).unwrap();
        s.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        t.elapsed()
    })
    .join()
    .unwrap();
    let peer = server.join().unwrap();
    // Lab 8's programs through the relay, tcp-server on h2 and its client on h1: the chart of
    // the record has a lifeline per process, named as each host's ps names it.
    let mut tcp_server = as_nobody(&bin("ipclab"))
        .unwrap()
        .env_remove("XDG_RUNTIME_DIR")
        .args(["hosts", "exec", "h2", "--"])
        .arg(bin("tcp-server"))
        .args(["--port", "9875"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut listening = String::new();
    // Kept open until the server is killed: a closed pipe would kill it at its next line.
    let mut server_out = BufReader::new(tcp_server.stdout.take().unwrap());
    server_out.read_line(&mut listening).unwrap();
    assert!(listening.starts_with("listening on"), "{listening}");
    let tcp_client = bin("tcp-client").display().to_string();
    let client = as_user(&[
        "hosts",
        "exec",
        "h1",
        "--",
        &tcp_client,
        "--host",
        "h2",
        "--port",
        "9875",
        "--message",
        "hello",
    ]);
    assert!(client.status.success(), "{}", text(&client.stderr));
    let server_pid = ipclab::inspect::all()
        .into_iter()
        .find(|p| p.comm == "tcp-server" && uid_of(p.pid) == NOBODY)
        .expect("tcp-server on h2")
        .pid;
    // Its child (the server, in h2's PID namespace) dies with it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(tcp_server.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    tcp_server.wait().unwrap();
    assert_eq!(
        until_state(server_pid, |s| s.is_none()),
        None,
        "killing hosts exec left what it ran"
    );
    drop(server_out);
    let off = as_user(&["hosts", "relay", "off"]);
    assert!(off.status.success(), "{}", text(&off.stderr));
    assert!(took >= std::time::Duration::from_millis(150), "{took:?}");
    assert_eq!(peer.ip().to_string(), "10.213.0.1");
    let held = std::fs::read_to_string(&rec)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["len"] == 1)
        .any(|v| v["due"].as_f64().unwrap() - v["t"].as_f64().unwrap() >= 0.149);
    assert!(held, "no piece held 150 ms in the record");
    let svg = rec_dir.path().join("relay.svg");
    let chart = ipclab(&[
        "hosts",
        "relay",
        "chart",
        rec.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    let lines = text(&chart.stdout);
    assert!(chart.status.success(), "{}", text(&chart.stderr));
    let hello = lines
        .lines()
        .find(|l| l.contains("6 B \"hello\\n\""))
        .unwrap_or_else(|| panic!("no hello piece:\n{lines}"));
    assert!(
        hello.contains("h1 tcp-client ") && hello.contains(" -> h2 tcp-server "),
        "{hello}"
    );
    assert!(hello.contains("(held 150"), "{hello}");
    let doc = std::fs::read_to_string(&svg).unwrap();
    let xml = roxmltree::Document::parse(&doc).unwrap();
    let lifelines: Vec<String> = xml
        .descendants()
        .filter(|n| n.attribute("class") == Some("lifeline"))
        .map(|n| n.descendants().filter_map(|t| t.text()).collect::<String>())
        .collect();
    assert!(
        lifelines.iter().any(|l| l.starts_with("h1 tcp-client "))
            && lifelines.iter().any(|l| l.starts_with("h2 tcp-server ")),
        "{lifelines:?}"
    );
    let bad = ipclab(&["hosts", "relay", "chart", "/nonexistent/record"]);
    assert_eq!(bad.status.code(), Some(2));
    // Lab 9's steps on another machine, as a student without root runs them: fingerd started
    // on h2 over ssh (as them, in their home), asked from h1, its log naming h1.
    let machines = rec_dir.path().join("machines");
    std::fs::write(&machines, "h2\n").unwrap();
    nix::unistd::chown(&machines, Some(NOBODY.into()), None).unwrap();
    let ipclab_bin = bin("ipclab").display().to_string();
    let lab9 = as_user(&[
        "hosts",
        "exec",
        "h1",
        "--",
        &ipclab_bin,
        "lab",
        "9",
        "--hosts",
        machines.to_str().unwrap(),
    ]);
    let said = text(&lab9.stdout);
    assert_eq!(lab9.status.code(), Some(0), "{said}{}", text(&lab9.stderr));
    assert!(
        said.contains("✓ h2's log names the login and this machine's address"),
        "{said}"
    );
    assert!(!said.contains('✗'), "{said}");
    // A crash fault on h2 kills its program.
    let plan = rec_dir.path().join("plan.jsonl");
    std::fs::write(&plan, "{\"at_ms\":0,\"host\":\"h2\",\"kind\":\"crash\"}\n").unwrap();
    nix::unistd::chown(&plan, Some(NOBODY.into()), None).unwrap();
    let crash = as_user(&["hosts", "faults", "--replay", plan.to_str().unwrap()]);
    assert!(crash.status.success(), "{}", text(&crash.stderr));
    assert!(
        text(&crash.stdout).contains(&sleeper.pid.to_string()),
        "{}",
        text(&crash.stdout)
    );
    assert_eq!(until_state(sleeper.pid, |s| s.is_none()), None);
    // Down: every host's process gone (the keeper may wait, a zombie, for PID 1), no state.
    let down = as_user(&["hosts", "down"]);
    assert!(down.status.success(), "{}", text(&down.stderr));
    for p in [keeper, s1, s2] {
        assert!(
            state_of(p).is_none_or(|s| s == 'Z'),
            "pid {p} still runs after down"
        );
    }
    assert!(!state.exists(), "{} left", state.display());
}

/// An echo server on h2 (a thread in its namespace): each byte sent back.
fn echo_on(h: &ipclab::hosts::Host) -> u16 {
    let ns = std::fs::File::open(format!("/run/netns/{}", h.netns())).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let l = std::net::TcpListener::bind(("0.0.0.0", 0)).unwrap();
        tx.send(l.local_addr().unwrap().port()).unwrap();
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let peer = c.peer_addr().unwrap();
            std::thread::spawn(move || {
                use std::io::Read;
                let mut b = [0u8; 64];
                // The first byte back is the peer's last address byte: whom the server saw.
                let _ = c.write_all(&[peer
                    .ip()
                    .to_string()
                    .rsplit('.')
                    .next()
                    .unwrap()
                    .parse::<u8>()
                    .unwrap()]);
                while let Ok(n) = c.read(&mut b) {
                    if n == 0 || c.write_all(&b[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    rx.recv().unwrap()
}

/// Round trips of one byte from h1 to h2's echo: (who the server saw, each trip's time).
fn round_trips(c: &ipclab::hosts::Cluster, port: u16, n: usize) -> (u8, Vec<std::time::Duration>) {
    use std::io::Read;
    let h2 = c.host("h2").unwrap().addr;
    let mut s = ipclab::hosts::connect_in(c.host("h1").unwrap(), (h2, port).into()).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    let seen = b[0];
    let trips = (0..n)
        .map(|_| {
            let t = std::time::Instant::now();
            s.write_all(b"x").unwrap();
            s.read_exact(&mut b).unwrap();
            t.elapsed()
        })
        .collect();
    (seen, trips)
}

/// The relay holds h1→h2 pieces 80 ms and h2→h1 ones 20 ms: a round trip takes at least 100
/// ms (at most 400 more on a loaded machine); the records time every piece by its link's
/// delay; the server still sees h1's address; off, the trips are direct again.
fn relay_delays_each_link(c: &ipclab::hosts::Cluster) {
    let port = echo_on(c.host("h2").unwrap());
    let (seen, direct) = round_trips(c, port, 3);
    assert_eq!(seen, 1, "the server saw 10.213.0.{seen}, not h1");
    let mut early = ipclab::hosts::connect_in(
        c.host("h1").unwrap(),
        (c.host("h2").unwrap().addr, port).into(),
    )
    .unwrap();
    early
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    {
        use std::io::Read;
        let mut who = [0u8; 1];
        early.read_exact(&mut who).unwrap();
    }
    let dir = private_dir();
    let rec = dir.path().join("wire.jsonl");
    for bad in [&["--delay", "h1:h9:5"][..], &["--delay", "h1-h2"]] {
        let out = ipclab(&[&["hosts", "relay", "on"][..], bad].concat());
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out.stderr));
    }
    let out = ipclab(&[
        "hosts",
        "relay",
        "on",
        "--delay",
        "h1:h2:80",
        "--delay",
        "h2:h1:20",
        "--record",
        rec.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "relay on: {}", text(&out.stderr));
    // A connection open before the relay stays direct, and open (not cut as new mid-stream).
    {
        use std::io::Read;
        let mut b = [0u8; 1];
        early.write_all(b"y").unwrap();
        early.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"y");
        // Not relayed: the records below have no piece of it.
    }
    let early_port = early.local_addr().unwrap().port();
    let again = ipclab(&["hosts", "relay", "on"]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));
    let (seen, trips) = round_trips(c, port, 3);
    let off = ipclab(&["hosts", "relay", "off"]);
    assert!(off.status.success(), "relay off: {}", text(&off.stderr));
    assert_eq!(seen, 1, "through the relay the server saw 10.213.0.{seen}");
    for t in &trips {
        let ms = t.as_secs_f64() * 1000.0;
        assert!(
            // The lower bound is the delay; the upper one only a safety net for a loaded machine.
            (100.0..3000.0).contains(&ms),
            "a relayed trip took {ms:.1} ms: {trips:?}"
        );
    }
    let records = std::fs::read_to_string(&rec).unwrap();
    assert!(
        !records.contains(&format!("10.213.0.1:{early_port}\"")),
        "the connection open before relay on was relayed: {records}"
    );
    let mut held = std::collections::BTreeMap::<String, Vec<f64>>::new();
    for l in records.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        if let (Some(t), Some(due), Some(from)) =
            (v["t"].as_f64(), v["due"].as_f64(), v["from"].as_str())
        {
            if v["len"].as_u64().is_some() {
                held.entry(from.split(' ').next().unwrap().to_string())
                    .or_default()
                    .push((due - t) * 1000.0);
            }
        }
    }
    for (host, want) in [("h1", 80.0), ("h2", 20.0)] {
        let v = &held[host];
        assert!(v.len() >= 3, "{host}: {records}");
        assert!(
            v.iter().all(|d| (d - want).abs() < 1.0),
            "{host}: held {v:?} ms, want {want}"
        );
    }
    let ruleset =
        run(Command::new("ip").args(["netns", "exec", "ipclab-h1", "nft", "list", "ruleset"]));
    assert!(
        !text(&ruleset.stdout).contains("redirect"),
        "the redirect stayed"
    );
    let (_, after) = round_trips(c, port, 3);
    // Every direct trip, relayed, would take 100 ms at least: the fastest says it was not.
    let fastest = direct.iter().chain(&after).min().unwrap();
    assert!(
        fastest.as_millis() < 100,
        "direct trips: {direct:?} {after:?}"
    );
}

/// With no delay the relay copies both directions on one thread: here both peers write 4 MiB
/// before either reads (a relay that blocked on one write would lock up), then each closes
/// its writing side; the server answers after the client's end (a half-close passed on), and
/// the records count every byte and both ends.
fn relay_copies_both_ways_at_once(c: &ipclab::hosts::Cluster) {
    use std::io::Read;
    const N: usize = 4 << 20;
    let pattern = |i: usize| (i % 251) as u8;
    let body: Vec<u8> = (0..N).map(pattern).collect();
    let h2 = c.host("h2").unwrap();
    let ns = std::fs::File::open(format!("/run/netns/{}", h2.netns())).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let sent = body.clone();
    let server = std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let l = std::net::TcpListener::bind(("0.0.0.0", 0)).unwrap();
        tx.send(l.local_addr().unwrap().port()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            w.write_all(&sent).unwrap();
        });
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        // Only after the client's end, which the relay must pass on as a shutdown.
        s.write_all(&(got.len() as u64).to_be_bytes()).unwrap();
        got
    });
    let port = rx.recv().unwrap();
    let dir = private_dir();
    let rec = dir.path().join("wire.jsonl");
    let out = ipclab(&[
        "hosts",
        "relay",
        "on",
        "--delay",
        "h1:h2:0",
        "--record",
        rec.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "relay on: {}", text(&out.stderr));
    let mut s = ipclab::hosts::connect_in(c.host("h1").unwrap(), (h2.addr, port).into()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut w = s.try_clone().unwrap();
    let mine = body.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&mine).unwrap();
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    let off = ipclab(&["hosts", "relay", "off"]);
    assert!(off.status.success(), "relay off: {}", text(&off.stderr));
    let theirs = server.join().unwrap();
    assert!(
        theirs == body,
        "the server got {} bytes, not the 4 MiB sent",
        theirs.len()
    );
    assert_eq!(got.len(), N + 8, "the client got {} bytes", got.len());
    assert!(got[..N] == body[..], "the client's bytes differ");
    assert_eq!(u64::from_be_bytes(got[N..].try_into().unwrap()), N as u64);
    let (mut bytes, mut ends) = (std::collections::BTreeMap::<String, u64>::new(), 0);
    for l in std::fs::read_to_string(&rec).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let from = v["from"].as_str().unwrap_or("").split(' ').next().unwrap();
        if let Some(n) = v["len"].as_u64() {
            *bytes.entry(from.to_string()).or_default() += n;
            assert_eq!(
                v["t"], v["due"],
                "a piece held back on a link without delay: {l}"
            );
        }
        ends += usize::from(v["ev"] == "eof");
    }
    assert_eq!(bytes.get("h1"), Some(&(N as u64)), "{bytes:?}");
    assert_eq!(bytes.get("h2"), Some(&(N as u64 + 8)), "{bytes:?}");
    assert_eq!(ends, 2, "both ends recorded");
}

/// Three programs on h1, h2, h3, each connected to the next one's listener by name: `hosts
/// links` finds the three connections in the kernel's tables and says they make one ring;
/// once h3's program is gone, they do not.
fn links_show_the_ring(c: &ipclab::hosts::Cluster) {
    let script = "import socket,sys\n\
l=socket.socket();l.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
l.bind(('0.0.0.0',7100));l.listen();print('listening',flush=True)\n\
sys.stdin.readline();c=socket.create_connection((sys.argv[1],7100))\n\
a,_=l.accept();print('up',flush=True);sys.stdin.read()\n";
    let names = c.names();
    let ring: Vec<(&str, &str)> = (0..3)
        .map(|i| (names[i].as_str(), names[(i + 1) % 3].as_str()))
        .collect();
    let mut nodes: Vec<std::process::Child> = ring
        .iter()
        .map(|(h, next)| {
            Command::new(bin("ipclab"))
                .args([
                    "hosts",
                    "exec",
                    h,
                    "--",
                    "/usr/bin/python3",
                    "-c",
                    script,
                    next,
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut outs: Vec<_> = nodes
        .iter_mut()
        .map(|n| BufReader::new(n.stdout.take().unwrap()))
        .collect();
    let line = |o: &mut BufReader<std::process::ChildStdout>| {
        let mut l = String::new();
        o.read_line(&mut l).unwrap();
        l.trim().to_string()
    };
    for o in &mut outs {
        assert_eq!(line(o), "listening");
    }
    // Every node listens: now each connects to the next.
    for n in &mut nodes {
        n.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    }
    for o in &mut outs {
        assert_eq!(line(o), "up");
    }
    let out = ipclab(&["hosts", "links"]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(said.matches(" <-> ").count(), 3, "{said}");
    assert!(said.contains("one ring of 3: h1 python3 "), "{said}");
    // h3's node ends: two connections are left, no ring.
    drop(nodes[2].stdin.take());
    nodes[2].wait().unwrap();
    let said = text(&ipclab(&["hosts", "links"]).stdout);
    assert!(!said.contains("one ring"), "{said}");
    for n in &mut nodes {
        drop(n.stdin.take());
        n.wait().unwrap();
    }
}

/// `ipclab lab 9 --hosts FILE` run on h1 as its user (the file lists h2): the daemon started on
/// h2 over ssh, asked from h1, its log naming h1's address, stopped over ssh. A bad machine
/// file is exit 2 before anything runs.
fn walkthrough_on_two_hosts(c: &ipclab::hosts::Cluster) {
    let h1 = c.host("h1").unwrap();
    let file = h1.home.join("machines");
    std::fs::write(&file, "# the other machine\nh2\n").unwrap();
    nix::unistd::chown(&file, Some(h1.uid.into()), Some(h1.uid.into())).unwrap();
    let ipclab_bin = bin("ipclab").display().to_string();
    let on_h1 = |args: &[&str]| {
        let out = ipclab(
            &[
                &["hosts", "exec", "h1", "--", ipclab_bin.as_str()][..],
                args,
            ]
            .concat(),
        );
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let (code, out, err) = on_h1(&["lab", "9", "--hosts", file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("fingerd on h2, asked from h1"), "{out}");
    // What the steps there could not judge is named: every check of the contract.
    assert!(out.contains("Not checked on the other machines"), "{out}");
    assert!(
        out.contains("daemonized, hostile-queries, logs-queries"),
        "{out}"
    );
    assert!(
        out.contains("✓ h2's log names the login and this machine's address"),
        "{out}"
    );
    assert!(!out.contains('✗'), "{out}");
    // Lab 8: each server on h2 over ssh, its client on h1; h2 sees h1's address.
    let (code, out, err) = on_h1(&["lab", "8", "--hosts", file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    for server in ["udp-server", "tcp-server"] {
        let want = format!(
            "✓ {server} on h2 answered, and saw h1's address ({})",
            h1.addr
        );
        assert!(out.contains(&want), "{want:?} missing:\n{out}");
        let stopped = format!("✓ SIGTERM over ssh: {server} closed its socket and exited 0");
        assert!(out.contains(&stopped), "{out}");
    }
    assert!(!out.contains('✗'), "{out}");
    // Stopped (SIGINT) while its program runs on h2, a walkthrough leaves nothing there: lab
    // 8's remote shell kills its server when the ssh session ends, lab 9's walkthrough stops
    // its daemon over ssh and removes the daemon's directory.
    let h2 = c.host("h2").unwrap();
    for (lab, client, server) in [
        ("8", "udp-client", "udp-server"),
        ("9", "fingercli", "fingerd"),
    ] {
        let mut child = Command::new(bin("ipclab"))
            .args(["hosts", "exec", "h1", "--", ipclab_bin.as_str(), "lab", lab])
            .args(["--hosts", file.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let err = std::thread::spawn(move || drain(err));
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !(line.contains(client) && line.contains("--host h2")) {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "lab {lab}: no {client} line"
            );
        }
        let on_h2: Vec<i32> = ipclab::faults::processes(h2)
            .into_iter()
            .filter(|p| ipclab::inspect::info(*p).is_some_and(|i| i.comm == server))
            .collect();
        assert_eq!(on_h2.len(), 1, "lab {lab}: {server} on h2: {on_h2:?}");
        // The walkthrough is the exec's grandchild (the exec forks into h1's PID namespace,
        // and waits).
        let waiter = ipclab::inspect::children(child.id() as i32);
        assert_eq!(waiter.len(), 1, "{waiter:?}");
        let walk = ipclab::inspect::children(waiter[0].pid);
        assert_eq!(walk.len(), 1, "{walk:?}");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(walk[0].pid),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let _ = drain(out);
        let code = child.wait().unwrap().code();
        let said = err.join().unwrap();
        assert_eq!(code, Some(130), "lab {lab}: {said}");
        assert_eq!(
            until_state(on_h2[0], |s| s.is_none()),
            None,
            "lab {lab}: {server} left running on h2 ({said})"
        );
    }
    let left: Vec<String> = std::fs::read_dir(&h2.home)
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("ipclab-fingerd."))
        .collect();
    assert!(left.is_empty(), "fingerd's directory left on h2: {left:?}");
    std::fs::write(&file, "h2\n-oProxyCommand=id\n").unwrap();
    let (code, _, err) = on_h1(&["lab", "9", "--hosts", file.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("machines:2: not a host name"), "{err}");
    let (code, _, err) = on_h1(&["lab", "2", "--hosts", file.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
}

/// A process's state letter (T stopped, Z zombie...), or None once it is gone.
fn state_of(pid: i32) -> Option<char> {
    ipclab::inspect::info(pid).map(|i| i.state)
}

/// Waits (5 s at most: the kernel acts on a signal at once, a loaded machine may lag) until
/// `pid`'s state satisfies `ok`.
fn until_state(pid: i32, ok: impl Fn(Option<char>) -> bool) -> Option<char> {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let s = state_of(pid);
        if ok(s) || std::time::Instant::now() > end {
            return s;
        }
        std::thread::yield_now();
    }
}

/// The seeded plan is the same for the same seed; a replayed plan pauses a program started
/// over ssh on h2 (stopped while the pause lasts, running after), restarts it (killed, then
/// the same argv in the same directory), then crashes it; bad plans and unknown hosts are exit 2.
fn faults_follow_their_plan(c: &ipclab::hosts::Cluster) {
    let plan = |seed: &str| {
        let out = ipclab(&[
            "hosts",
            "faults",
            "--seed",
            seed,
            "--count",
            "6",
            "--plan-only",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let a = plan("11");
    assert_eq!(a, plan("11"));
    assert_ne!(a, plan("12"));
    assert_eq!(a.lines().count(), 6, "{a}");
    let h2 = c.host("h2").unwrap();
    // Earlier steps left programs of their own on h2: the victim is the new one.
    let before = ipclab::faults::processes(h2);
    // ssh returns once the shell has started the program in the background.
    let out = ipclab(&[
        "hosts",
        "exec",
        "h1",
        "--",
        "ssh",
        "h2",
        "nohup sleep 300 >/dev/null 2>&1 &",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let victims: Vec<i32> = ipclab::faults::processes(h2)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(victims.len(), 1, "{victims:?}");
    let v = victims[0];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plan.jsonl");
    std::fs::write(
        &file,
        "{\"at_ms\":0,\"host\":\"h2\",\"kind\":\"pause\",\"ms\":1500}\n\
         {\"at_ms\":1600,\"host\":\"h2\",\"kind\":\"restart\",\"ms\":100}\n",
    )
    .unwrap();
    let mut child = Command::new(bin("ipclab"))
        .args(["hosts", "faults", "--replay"])
        .arg(&file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next =
        || -> serde_json::Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    let start = next();
    assert_eq!(
        (start["phase"].as_str(), start["fault"]["kind"].as_str()),
        (Some("start"), Some("pause"))
    );
    let hit: Vec<i64> = start["pids"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_i64())
        .collect();
    assert!(hit.contains(&(v as i64)), "{start}");
    // What a restart must bring back: h2's programs, read while they are alive (stopped).
    let argvs = |progs: &[ipclab::faults::Program]| {
        let mut v: Vec<(Vec<String>, std::path::PathBuf)> = progs
            .iter()
            .map(|p| (p.argv.clone(), p.cwd.clone()))
            .collect();
        v.sort();
        v
    };
    let want = argvs(&ipclab::faults::leaders(
        &hit.iter().map(|p| *p as i32).collect::<Vec<_>>(),
    ));
    assert_eq!(
        until_state(v, |s| s == Some('T')),
        Some('T'),
        "not stopped by the pause"
    );
    let end = next();
    assert_eq!(end["phase"], "end");
    assert!(end["t_ms"].as_f64().unwrap() >= 1500.0, "{end}");
    let s = until_state(v, |s| s != Some('T'));
    assert!(s.is_some() && s != Some('T'), "not continued: {s:?}");
    // The restart kills it, then starts it again over ssh in the same directory.
    let killed = next();
    assert_eq!(killed["phase"], "killed", "{killed}");
    assert_eq!(
        until_state(v, |s| s.is_none()),
        None,
        "the restart did not kill it"
    );
    let started = next();
    assert_eq!(started["phase"], "started", "{started}");
    // Every program h2 ran comes back (an earlier step's too), each its argv in its
    // directory, under new pids. The shell there forks, then execs the program: wait (5 s at
    // most) for the execs.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let now = loop {
        let now = ipclab::faults::processes(h2);
        if argvs(&ipclab::faults::leaders(&now)) == want || std::time::Instant::now() > end {
            break now;
        }
        std::thread::yield_now();
    };
    assert_eq!(argvs(&ipclab::faults::leaders(&now)), want, "{now:?}");
    assert!(
        want.iter()
            .any(|(a, cwd)| *a == ["sleep", "300"] && *cwd == h2.home),
        "{want:?}"
    );
    assert!(
        now.iter().all(|p| !hit.contains(&(*p as i64))),
        "{now:?} {hit:?}"
    );
    let v = *now
        .iter()
        .find(|p| {
            ipclab::faults::leaders(&[**p])
                .first()
                .is_some_and(|l| l.argv == ["sleep", "300"])
        })
        .unwrap();
    assert!(child.wait().unwrap().success());
    // The crash in a plan of its own, once the restart is seen (in one plan, a slow restart
    // over ssh could have its programs killed before this test saw them back).
    std::fs::write(
        &file,
        "{\"at_ms\":200,\"host\":\"h2\",\"kind\":\"crash\"}\n",
    )
    .unwrap();
    let out = ipclab(&["hosts", "faults", "--replay", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let crash: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().next().unwrap_or("")).unwrap();
    assert_eq!(
        (crash["phase"].as_str(), crash["fault"]["kind"].as_str()),
        (Some("done"), Some("crash"))
    );
    assert!(crash["t_ms"].as_f64().unwrap() >= 200.0, "{crash}");
    assert!(
        crash["pids"].as_array().unwrap().contains(&v.into()),
        "{crash}"
    );
    // Killed, then reaped by h2's init (its sshd).
    assert_eq!(until_state(v, |s| s.is_none()), None, "the crash left it");
    // Interrupted during a long pause, then a long partition, the plan undoes the fault under
    // way: the program runs again, the link is back, and the run ends with 128 + the signal.
    let out = ipclab(&[
        "hosts",
        "exec",
        "h1",
        "--",
        "ssh",
        "h2",
        "nohup sleep 301 >/dev/null 2>&1 &",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for (kind, sig) in [
        ("pause", nix::sys::signal::Signal::SIGINT),
        ("partition", nix::sys::signal::Signal::SIGTERM),
    ] {
        std::fs::write(
            &file,
            format!("{{\"at_ms\":0,\"host\":\"h2\",\"kind\":\"{kind}\",\"ms\":600000}}\n"),
        )
        .unwrap();
        let mut child = Command::new(bin("ipclab"))
            .args(["hosts", "faults", "--replay"])
            .arg(&file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let start: serde_json::Value =
            serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert_eq!(start["phase"], "start", "{start}");
        let stopped: Vec<i32> = start["pids"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p.as_i64().map(|p| p as i32))
            .collect();
        assert_eq!(kind == "pause", !stopped.is_empty(), "{start}");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
        let end: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert_eq!(end["phase"], "end", "{end}");
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(128 + sig as i32), "{kind}");
        assert!(
            text(&out.stderr).contains("the fault under way undone"),
            "{}",
            text(&out.stderr)
        );
        for p in stopped {
            assert_ne!(state_of(p), Some('T'), "{kind}: pid {p} left stopped");
        }
        let across = ipclab(&["hosts", "exec", "h1", "--", "ssh", "h2", "true"]);
        assert!(across.status.success(), "{kind}: h1 cannot reach h2 after");
    }
    for bad in [
        &["hosts", "faults", "--on", "h9"][..],
        &["hosts", "faults", "--replay", "/nonexistent/plan"][..],
    ] {
        let out = ipclab(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out.stderr));
        assert_eq!(
            text(&out.stderr).lines().count(),
            1,
            "{bad:?}: {}",
            text(&out.stderr)
        );
    }
    std::fs::write(&file, "{\"at_ms\":0,\"host\":\"h2\",\"kind\":\"melt\"}\n").unwrap();
    let out = ipclab(&["hosts", "faults", "--replay", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("plan line 1"),
        "{}",
        text(&out.stderr)
    );
}
