//! Namespace hosts for a normal user: `ipclab hosts up K` without root. One keeper process
//! owns a user namespace of the caller's (their uid mapped to itself: inside, they are
//! themselves, never root), a mount namespace (the run's /etc/hosts, passwd, shadow and ssh_config
//! bound over the machine's, for it and its hosts alone), a PID namespace whose init it is,
//! and the hub's network namespace with the bridge. Each host is an sshd on port 2222 (a
//! normal user cannot bind 22) as the init of its own network, UTS, mount and PID namespaces,
//! its eth0 a veth on the hub's bridge: `ssh h2 "cd DIR; ./prog"` and `connect(("h2", P))`
//! work as in the TP room, every host running as the caller, with the caller's files.
//!
//! The keeper keeps full capabilities in its user namespace (it never execs); `ip` runs from
//! it with CAP_NET_ADMIN and CAP_SYS_ADMIN made ambient, since an exec by a uid other than 0
//! drops every other capability; the sshds run with none. `down` SIGKILLs the keeper: the
//! kernel then kills everything in its PID namespace (the hosts', nested in it), and the
//! namespaces go with their last process. Nothing is left in /run/netns or any shared place:
//! the state (keys, configs, logs) is one 0700 directory of the caller's, removed by `down`.
//!
//! Every fault works as for root: pause, crash and restart are signals and ssh; a partition
//! and the relay run nftables in a host from a process that joined the keeper's user
//! namespace, CAP_NET_ADMIN made ambient for the `nft` it execs.

use crate::error::{Error, Result};
use crate::hosts::{self, Host};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// sshd's port on each host: a normal user cannot bind below 1024.
pub const SSH_PORT: u16 = 2222;
const SSHD: &str = "/usr/sbin/sshd";
const IP: &str = "/usr/sbin/ip";
const NFT: &str = "/usr/sbin/nft";
/// Safety net for every sshd to listen and for the keeper to say it is ready.
const READY: Duration = Duration::from_secs(15);

/// The caller's state directory: `$XDG_RUNTIME_DIR/ipclab-hosts` when that is theirs, else
/// `/tmp/ipclab-hosts-UID` (what `down` removes).
pub fn state_dir() -> PathBuf {
    let uid = nix::unistd::getuid().as_raw();
    if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR") {
        use std::os::unix::fs::MetadataExt;
        let run = PathBuf::from(run);
        if std::fs::symlink_metadata(&run).is_ok_and(|m| m.is_dir() && m.uid() == uid) {
            return run.join("ipclab-hosts");
        }
    }
    PathBuf::from(format!("/tmp/ipclab-hosts-{uid}"))
}

/// The keeper's pid (as this PID namespace sees it), if it is alive and the caller's: the
/// pid and start time recorded by `up` (a pid used again by another process does not match).
pub fn keeper_pid() -> Option<i32> {
    use std::os::unix::fs::MetadataExt;
    let text = std::fs::read_to_string(state_dir().join("keeper.pid")).ok()?;
    let mut w = text.split_whitespace();
    let pid: i32 = w.next()?.parse().ok()?;
    let started: u64 = w.next()?.parse().ok()?;
    let mine = std::fs::metadata(format!("/proc/{pid}"))
        .is_ok_and(|m| m.uid() == nix::unistd::getuid().as_raw());
    let alive = crate::inspect::info(pid).is_some_and(|i| !i.is_zombie());
    (mine && alive && start_time(pid) == Some(started)).then_some(pid)
}

/// When `pid` started (clock ticks after boot): with the pid, a process's identity.
fn start_time(pid: i32) -> Option<u64> {
    procfs::process::Process::new(pid)
        .ok()?
        .stat()
        .ok()
        .map(|s| s.starttime)
}

/// The keeper's user namespace, which `hosts exec` joins first (the caller owns it, so it
/// holds every capability there) before the host's own namespaces.
pub fn userns() -> Result<OwnedFd> {
    let pid = keeper_pid().ok_or_else(|| {
        Error::runtime("the hosts' keeper is not running: ipclab hosts down, then up").with_code(3)
    })?;
    let p = format!("/proc/{pid}/ns/user");
    std::fs::File::open(&p)
        .map(OwnedFd::from)
        .map_err(|e| Error::io(&e, "open", p).with_code(3))
}

/// Brings up `k` hosts for the caller; on any failure removes what it made and says why.
pub fn up(k: usize, race: Option<&hosts::Race>) -> Result<Vec<Host>> {
    for tool in [IP, SSHD, "/usr/bin/ssh-keygen", "/usr/bin/ssh"] {
        if !Path::new(tool).exists() {
            return Err(Error::runtime(format!(
                "{tool} not found: apt-get install iproute2 openssh-server openssh-client"
            ))
            .with_code(3));
        }
    }
    let dir = state_dir();
    if keeper_pid().is_some() {
        return Err(Error::usage(
            "hosts are up already: ipclab hosts down first (ipclab hosts list names them)",
        ));
    }
    // A stale directory (a keeper killed by hand, a reboot of /run) goes first.
    remove_state(&dir)?;
    hosts::mkdir(&dir, 0o700, None)?;
    let made = prepare(&dir, k, race).and_then(|hosts| start_keeper(&dir, &hosts).map(|_| hosts));
    if made.is_err() {
        let _ = down();
    }
    made
}

/// Kills the keeper (and with it every host) and removes the state; the names removed.
pub fn down() -> Result<Vec<String>> {
    let dir = state_dir();
    let names = crate::hosts::Cluster::current()
        .map(|c| c.names())
        .unwrap_or_default();
    // The relay runs outside the keeper's PID namespace, holding sockets in the hosts'.
    if let Some(pid) = std::fs::read_to_string(dir.join("relay.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|p| {
            // Still the relay, not a pid used again: it joined the keeper's user namespace.
            let ns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/user")).ok();
            keeper_pid().is_some_and(|k| ns(k).is_some() && ns(k) == ns(*p))
        })
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    if let Some(pid) = keeper_pid() {
        let p = nix::unistd::Pid::from_raw(pid);
        let fd = crate::process::pidfd_open(p).ok();
        let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
        // Its PID namespace is torn down (every host's process killed and reaped) before the
        // keeper itself is gone: once the pidfd says so, nothing of the hosts runs.
        if let Some(fd) = fd {
            use std::os::fd::AsFd;
            let _ = crate::signals::poll_fds(&[fd.as_fd()], Some(READY));
        }
    }
    remove_state(&dir)?;
    Ok(names)
}

fn remove_state(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::symlink_metadata(dir) {
        Err(_) => Ok(()),
        Ok(m) if m.is_dir() && m.uid() == nix::unistd::getuid().as_raw() => {
            std::fs::remove_dir_all(dir).map_err(|e| Error::io(&e, "remove", dir.display()))
        }
        Ok(_) => Err(Error::runtime(format!(
            "{}: not a directory of yours; remove it or set XDG_RUNTIME_DIR",
            dir.display()
        ))
        .with_code(3)),
    }
}

/// Keys, configs and the record, all in `dir`: nothing is written anywhere else.
fn prepare(dir: &Path, k: usize, race: Option<&hosts::Race>) -> Result<Vec<Host>> {
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let me = nix::unistd::User::from_uid(uid.into()).ok().flatten();
    let user = me.as_ref().map_or("ipclab".to_string(), |u| u.name.clone());
    // The hosts share the caller's files, as the TP room shares homes over NFS: the real home
    // when it is a directory of theirs, else one in the state directory (nobody's is
    // /nonexistent).
    let home = me
        .as_ref()
        .map(|u| u.dir.clone())
        .filter(|d| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(d).is_ok_and(|m| m.is_dir() && m.uid() == uid)
        })
        .unwrap_or_else(|| dir.join("home"));
    if !home.exists() {
        hosts::mkdir(&home, 0o700, None)?;
    }
    let hosts: Vec<Host> = (1..=k)
        .map(|i| Host {
            name: format!("h{i}"),
            addr: hosts::address(i),
            uid,
            user: user.clone(),
            home: home.clone(),
        })
        .collect();
    if let Some(r) = race {
        hosts::install_race(dir, r)?;
    }
    let key = dir.join("id_ed25519");
    let client_pub = hosts::keygen(&key, "ipclab-hosts")?;
    hosts::write(
        &dir.join("authorized_keys"),
        &format!("{client_pub}\n"),
        0o600,
        None,
    )?;
    let mut known = String::new();
    for h in &hosts {
        let d = dir.join(&h.name);
        hosts::mkdir(&d, 0o700, None)?;
        let host_pub = hosts::keygen(&d.join("host_key"), &h.name)?;
        known.push_str(&format!(
            "[{n}]:{SSH_PORT},[{a}]:{SSH_PORT} {host_pub}\n",
            n = h.name,
            a = h.addr
        ));
        let config = format!(
            "# Written by ipclab hosts up for {name}, run by {user}.\n\
             ListenAddress 0.0.0.0\nPort {SSH_PORT}\nHostKey {d}/host_key\nPidFile none\n\
             AuthorizedKeysFile {dir}/authorized_keys\nStrictModes no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             PrintMotd no\nPrintLastLog no\nAcceptEnv LANG LC_*\n\
             Subsystem sftp internal-sftp\n{race}",
            name = h.name,
            d = d.display(),
            dir = dir.display(),
            race = hosts::race_env(dir, h, race),
        );
        hosts::write(&d.join("sshd_config"), &config, 0o600, None)?;
    }
    hosts::write(&dir.join("known_hosts"), &known, 0o600, None)?;
    // Absolute paths: ~ is the passwd home, which may not hold them.
    let ssh_config = hosts::client_config(
        &hosts,
        Some(SSH_PORT),
        &key.display().to_string(),
        &dir.join("known_hosts").display().to_string(),
    );
    hosts::write(&dir.join("ssh_config"), &ssh_config, 0o644, None)?;
    hosts::write(&dir.join("hosts"), &hosts::etc_hosts(&hosts), 0o644, None)?;
    hosts::write(
        &dir.join("passwd"),
        &passwd(uid, gid, &user, &home),
        0o644,
        None,
    )?;
    // sshd without PAM refuses a locked account, and cannot read the machine's shadow: NSS
    // then falls back to systemd's, which calls nobody locked (`!*`). Ours says "no password"
    // (`*`, not locked) for the caller alone; nothing else is in it.
    hosts::write(
        &dir.join("shadow"),
        &format!("{user}:*:::::::\n"),
        0o600,
        None,
    )?;
    hosts::write(
        &dir.join("machines"),
        &hosts::machine_lines(&hosts),
        0o644,
        None,
    )?;
    let record: String = hosts.iter().map(Host::record_line).collect();
    hosts::write(&dir.join("cluster"), &record, 0o600, None)?;
    Ok(hosts)
}

/// The machine's passwd with the caller's entry given the hosts' home and a shell that runs
/// commands (sshd runs a session's command through it; nobody's is nologin).
fn passwd(uid: u32, gid: u32, user: &str, home: &Path) -> String {
    let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let mut out = String::new();
    let mut found = false;
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() == 7 && f[2] == uid.to_string() && !found {
            found = true;
            let shell = if f[6].ends_with("nologin") || f[6].ends_with("false") || f[6].is_empty() {
                "/bin/sh"
            } else {
                f[6]
            };
            out.push_str(&format!(
                "{}:x:{}:{}:{}:{}:{shell}\n",
                f[0],
                f[2],
                f[3],
                f[4],
                home.display()
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !found {
        out.push_str(&format!(
            "{user}:x:{uid}:{gid}::{}:/bin/sh\n",
            home.display()
        ));
    }
    out
}

/// Forks the keeper's parent, which makes the user namespace (and the mount, PID and hub
/// network namespaces), forks the keeper as their init and tells its pid; the keeper builds
/// the hosts and says "ok" with their sshds' pids as it sees them. The caller records the
/// pids as this PID namespace sees them.
fn start_keeper(dir: &Path, hosts: &[Host]) -> Result<()> {
    use nix::unistd::ForkResult;
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::sys(e, "pipe2", "keeper"))?;
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    // Safety: `ipclab hosts up` is single-threaded here (unshare of a user namespace requires
    // it); the child makes the namespaces, forks the keeper and _exits.
    match unsafe { nix::unistd::fork() }.map_err(|e| Error::sys(e, "fork", "keeper"))? {
        ForkResult::Child => {
            drop(r);
            let code = match namespaces(uid, gid) {
                Err(e) => {
                    let _ = tell(&w, &format!("error {e}\n"));
                    1
                }
                // Safety: single-threaded; the keeper never returns.
                Ok(()) => match unsafe { nix::unistd::fork() } {
                    Err(e) => {
                        let _ = tell(&w, &format!("error fork keeper: {e}\n"));
                        1
                    }
                    Ok(ForkResult::Child) => {
                        let code = keeper(dir, hosts, w);
                        // Safety: _exit from the forked keeper.
                        unsafe { libc::_exit(code) }
                    }
                    Ok(ForkResult::Parent { child }) => {
                        let _ = tell(&w, &format!("pid {child}\n"));
                        0
                    }
                },
            };
            // Safety: _exit from the forked child.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(w);
            let _ = nix::sys::wait::waitpid(child, None);
            let mut said = String::new();
            let _ = std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut said);
            let mut keeper = None;
            let mut local = None;
            for line in said.lines() {
                if let Some(p) = line.strip_prefix("pid ") {
                    keeper = p.trim().parse::<i32>().ok();
                    if let Some(k) = keeper {
                        let started = start_time(k).unwrap_or(0);
                        hosts::write(
                            &dir.join("keeper.pid"),
                            &format!("{k} {started}\n"),
                            0o600,
                            None,
                        )?;
                    }
                } else if let Some(pids) = line.strip_prefix("ok") {
                    local = Some(
                        pids.split_whitespace()
                            .filter_map(|p| p.parse::<i32>().ok())
                            .collect::<Vec<_>>(),
                    );
                } else if let Some(e) = line.strip_prefix("error ") {
                    return Err(
                        Error::runtime(format!("hosts up: {e} (see ipclab doctor)")).with_code(3)
                    );
                }
            }
            let (Some(keeper), Some(local)) = (keeper, local) else {
                return Err(Error::runtime(
                    "hosts up: the keeper died while making the hosts".to_string(),
                )
                .with_code(3));
            };
            for (h, l) in hosts.iter().zip(&local) {
                let pid = outer_pid(keeper, *l).ok_or_else(|| {
                    Error::runtime(format!("hosts up: sshd of {} not found", h.name)).with_code(3)
                })?;
                hosts::write(
                    &dir.join(&h.name).join("sshd.pid"),
                    &format!("{pid}\n"),
                    0o600,
                    None,
                )?;
            }
            Ok(())
        }
    }
}

/// The pid, as this namespace sees it, of the keeper's child known there as `local`
/// (/proc/PID/status's NSpid lists a process's pid in each namespace, outermost first).
fn outer_pid(keeper: i32, local: i32) -> Option<i32> {
    crate::inspect::children(keeper).into_iter().find_map(|c| {
        let status = std::fs::read_to_string(format!("/proc/{}/status", c.pid)).ok()?;
        let ns: Vec<i32> = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))?
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        (ns.get(1) == Some(&local)).then_some(c.pid)
    })
}

/// Whether the whole message went (below PIPE_BUF: all or nothing).
fn tell(w: &OwnedFd, msg: &str) -> bool {
    // Safety: write(2) of our own buffer.
    unsafe { libc::write(w.as_raw_fd(), msg.as_ptr().cast(), msg.len()) == msg.len() as isize }
}

/// In the forked child: a user namespace mapping the caller to itself, then the mount, PID
/// and (hub) network namespaces owned by it.
fn namespaces(uid: u32, gid: u32) -> std::result::Result<(), String> {
    use nix::sched::{unshare, CloneFlags};
    let _ = nix::unistd::setsid();
    unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| format!("unshare user namespace: {e}"))?;
    for (file, text) in [
        ("setgroups", "deny".to_string()),
        ("uid_map", format!("{uid} {uid} 1")),
        ("gid_map", format!("{gid} {gid} 1")),
    ] {
        std::fs::write(format!("/proc/self/{file}"), text)
            .map_err(|e| format!("write /proc/self/{file}: {e}"))?;
    }
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("unshare mount, PID and network namespaces: {e}"))
}

/// The keeper: the PID namespace's init. Builds the hub and the hosts, says "ok" and their
/// sshds' pids, then reaps its children until it is killed.
fn keeper(dir: &Path, hosts: &[Host], w: OwnedFd) -> i32 {
    let keep = [w.as_raw_fd()];
    crate::daemon::close_fds_except(&keep);
    let _ = crate::daemon::stdio_to_dev_null();
    // SIGCHLD blocked and taken with sigwait: the keeper sleeps until a child ends.
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGCHLD);
    let _ = set.thread_block();
    match build(dir, hosts) {
        Ok(pids) => {
            let list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
            // Nobody to hear it (`hosts up` interrupted): the hosts go with the keeper.
            if !tell(&w, &format!("ok {}\n", list.join(" "))) {
                return 1;
            }
        }
        Err(e) => {
            let _ = tell(&w, &format!("error {e}\n"));
            return 1;
        }
    }
    drop(w);
    loop {
        let _ = set.wait();
        while let Ok(s) = nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG))
        {
            if s == nix::sys::wait::WaitStatus::StillAlive {
                break;
            }
        }
    }
}

fn build(dir: &Path, hosts: &[Host]) -> std::result::Result<Vec<i32>, String> {
    use nix::mount::{mount, MsFlags};
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("mount --make-rprivate /: {e}"))?;
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| format!("mount /proc: {e}"))?;
    for (src, dst) in [
        ("hosts", "/etc/hosts"),
        ("passwd", "/etc/passwd"),
        ("shadow", "/etc/shadow"),
        ("ssh_config", "/etc/ssh/ssh_config"),
    ] {
        if !Path::new(dst).exists() {
            continue;
        }
        mount(
            Some(&dir.join(src)),
            dst,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("bind {src} over {dst}: {e}"))?;
    }
    // ip is exec'd by a uid other than 0: only ambient capabilities survive that exec.
    for cap in [
        caps::Capability::CAP_NET_ADMIN,
        caps::Capability::CAP_SYS_ADMIN,
    ] {
        caps::raise(None, caps::CapSet::Inheritable, cap)
            .and_then(|_| caps::raise(None, caps::CapSet::Ambient, cap))
            .map_err(|e| format!("ambient {cap}: {e}"))?;
    }
    ip(None, &["link", "set", "lo", "up"])?;
    ip(None, &["link", "add", "br0", "type", "bridge"])?;
    ip(None, &["link", "set", "br0", "up"])?;
    let mut pids = Vec::new();
    for h in hosts {
        let pid = start_sshd(dir, h)?;
        pids.push(pid);
        let peer = format!("v{}", h.name);
        ip(
            None,
            &[
                "link",
                "add",
                &peer,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &pid.to_string(),
            ],
        )?;
        ip(None, &["link", "set", &peer, "master", "br0", "up"])?;
        let cidr = format!("{}/24", h.addr);
        ip(Some(pid), &["addr", "add", &cidr, "dev", "eth0"])?;
        ip(Some(pid), &["link", "set", "eth0", "up"])?;
        ip(Some(pid), &["link", "set", "lo", "up"])?;
        if Path::new(NFT).exists() {
            tool(NFT, Some(pid), &[&hosts::relay_chains()])?;
        }
    }
    for (h, pid) in hosts.iter().zip(&pids) {
        wait_listening(dir, h, *pid)?;
    }
    Ok(pids)
}

/// `ip ARGS`, in the network namespace of `pid` when given.
fn ip(pid: Option<i32>, args: &[&str]) -> std::result::Result<(), String> {
    tool(IP, pid, args)
}

/// `PROG ARGS`, in the network namespace of `pid` when given (entered by the forked child).
fn tool(prog: &str, pid: Option<i32>, args: &[&str]) -> std::result::Result<(), String> {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(prog);
    c.args(args).env_clear().stdin(std::process::Stdio::null());
    if let Some(pid) = pid {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
            .map_err(|e| format!("open /proc/{pid}/ns/net: {e}"))?;
        // Safety: setns is a plain syscall in the forked child.
        unsafe {
            c.pre_exec(move || {
                if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let out = c.output().map_err(|e| format!("exec {prog}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{prog} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// The host's sshd as the init of its own network, UTS, mount and PID namespaces, with no
/// capability; its pid as the keeper sees it.
fn start_sshd(dir: &Path, h: &Host) -> std::result::Result<i32, String> {
    let d = dir.join(&h.name);
    let log = d.join("sshd.log").display().to_string();
    hosts::start_sshd_init(
        &h.name,
        &d.join("sshd_config"),
        &log,
        hosts::Init {
            netns: None,
            binds: Vec::new(),
            clear_ambient: true,
        },
    )
}

/// Until the host's sshd listens on SSH_PORT (its socket table, which needs no capability);
/// at once if it died.
fn wait_listening(dir: &Path, h: &Host, pid: i32) -> std::result::Result<(), String> {
    let deadline = Instant::now() + READY;
    let want = format!(":{SSH_PORT:04X} ");
    loop {
        let alive = crate::inspect::info(pid).is_some_and(|i| !i.is_zombie());
        if !alive {
            return Err(format!(
                "sshd for {} exited: {}",
                h.name,
                std::fs::read_to_string(dir.join(&h.name).join("sshd.log"))
                    .map(|l| l.trim().replace('\n', "; "))
                    .unwrap_or_default()
            ));
        }
        let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
        // local_address then rem_address then st: 0A is LISTEN.
        if table.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && format!("{} ", f[1]).ends_with(&want) && f[3] == "0A"
        }) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "sshd for {} did not listen on port {SSH_PORT} within {} s",
                h.name,
                READY.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Joins the keeper's user namespace, unless this process is root or in it already: it then
/// holds every capability there (and none elsewhere). Only a single-threaded process may.
pub fn join_if_user() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let ns = userns()?;
    let here = std::fs::metadata("/proc/self/ns/user");
    let there = ns_inode(&ns);
    if here.is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        Some(m.ino()) == there
    }) {
        return Ok(());
    }
    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWUSER)
        .map_err(|e| Error::sys(e, "setns", "the hosts' user namespace").with_code(3))
}

fn ns_inode(fd: &OwnedFd) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::File::from(fd.try_clone().ok()?)
        .metadata()
        .ok()
        .map(|m| m.ino())
}

/// `nft SCRIPT` in `h`'s network namespace for a normal user: the forked child joins the
/// keeper's user namespace (unless this process did), then the host's network namespace, and
/// makes CAP_NET_ADMIN ambient so that it survives the exec of nft.
pub fn nft(h: &Host, script: &str) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let ns = userns()?;
    let joined = std::fs::metadata("/proc/self/ns/user").is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        Some(m.ino()) == ns_inode(&ns)
    });
    let user = (!joined).then_some(ns);
    let net = h
        .net_ns()
        .map_err(|e| Error::io(&e, "open the network namespace of", &h.name).with_code(3))?;
    let mut c = Command::new(NFT);
    c.arg(script).env_clear().stdin(std::process::Stdio::null());
    // Safety: setns, capget, capset and prctl are plain syscalls on stack data: nothing
    // allocates in the child (the relay calls this while its threads run).
    unsafe {
        c.pre_exec(move || {
            if let Some(u) = &user {
                if libc::setns(u.as_raw_fd(), libc::CLONE_NEWUSER) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::setns(net.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            raise_ambient(caps::Capability::CAP_NET_ADMIN.index() as u32)
        });
    }
    hosts::checked(&mut c, NFT, &format!("nft on {}", h.name))
}

/// Makes `cap` ambient (inheritable first, as the kernel requires), with raw capget/capset:
/// callable between fork and exec.
///
/// Safety: only syscalls on stack data.
unsafe fn raise_ambient(cap: u32) -> std::io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut h = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut d = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    if libc::syscall(libc::SYS_capget, &mut h as *mut Header, d.as_mut_ptr()) != 0 {
        return Err(std::io::Error::last_os_error());
    }
    d[(cap / 32) as usize].inheritable |= 1 << (cap % 32);
    if libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()) != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if libc::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_RAISE,
        cap as libc::c_ulong,
        0,
        0,
    ) != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
