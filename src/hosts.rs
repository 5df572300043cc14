//! Hosts on one machine for the distributed labs (8–15), as the course's lab room has them:
//! `ipclab hosts up K` makes K network namespaces h1..hK on one bridge, each a host box (its own
//! uid, passwd entry and home: `sandbox::HostBox`) running a root sshd whose sessions drop to the
//! host's user. Inside every host, `h2` resolves (its own /etc/hosts), `hostname` says its name
//! and `ssh h2 "cd DIR; ./prog ARGS"` works with the run's keys, as in the TP room. Each host
//! has its own PID namespace whose init is its sshd: what a session leaves running is reaped
//! there, and `down` kills the sshd, the kernel then killing and reaping the rest — no zombie of
//! a host's user waits for the machine's PID 1 (which, in a VM or container, may reap late).
//!
//! The bridge lives in a namespace of its own (`ipclab-hub`): the hosts reach one another and
//! nothing else, and the machine's own network and routes are never touched. `ipclab hosts exec
//! hN -- CMD` runs a command on hN (its namespaces, its user), the way a student sits at hN.
//!
//! As root, each host is a box with its own uid and a root sshd on port 22. A normal user gets
//! the same hosts inside a user namespace of their own (src/hosts/user.rs): every host runs as
//! them, its sshd on port 2222; `doctor` says whether this kernel allows it.

pub mod user;

use crate::error::{Error, Result};
use crate::sandbox::{self, HostBox};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The hosts' network: inside our namespaces only, so a clash with a real network is harmless.
pub const SUBNET: [u8; 3] = [10, 213, 0];
pub const MAX_HOSTS: usize = 64;
const HUB: &str = "ipclab-hub";
const SSHD: &str = "/usr/sbin/sshd";
/// Safety net for an sshd to listen (it usually takes a few ms).
const READY: Duration = Duration::from_secs(10);

/// A machine file as the course's launchers read it (`--hosts FILE`): one hostname a line;
/// blank lines and `#` comments skipped. A name is letters, digits, `.` and `-`, not starting
/// with `-` (it becomes an ssh argument: `-oProxyCommand=...` must never be one).
pub fn read_machine_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(&e, "read", path.display()).into_usage())?;
    let mut names = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let name = line.split('#').next().unwrap_or("").trim();
        if name.is_empty() {
            continue;
        }
        let ok = name.len() <= 253
            && !name.starts_with(['-', '.'])
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if !ok {
            return Err(Error::usage(format!(
                "{}:{}: not a host name: {name:?}",
                path.display(),
                n + 1
            )));
        }
        names.push(name.to_string());
    }
    if names.is_empty() {
        return Err(Error::usage(format!(
            "{}: no host in it (one hostname a line)",
            path.display()
        )));
    }
    Ok(names)
}

/// One host: name (h1), address, the box user its sessions run as.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub addr: Ipv4Addr,
    pub uid: u32,
    pub user: String,
    pub home: PathBuf,
}

impl Host {
    /// The `ip netns` name (prefixed: a namespace of someone else named h1 is not ours).
    pub fn netns(&self) -> String {
        format!("ipclab-{}", self.name)
    }

    /// Its keys, configs and logs: root's host box, or a normal user's state directory.
    fn root(&self) -> PathBuf {
        if is_root() {
            Path::new(sandbox::STATE).join(format!("host-{}", self.name))
        } else {
            state().join(&self.name)
        }
    }

    /// The sshd's pid, from its pidfile, if it is alive.
    pub fn sshd_pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.root().join("sshd.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        crate::inspect::info(pid)
            .filter(|i| !i.is_zombie())
            .map(|_| pid)
    }

    /// The host's network namespace: root's by its name in /run/netns, a normal user's
    /// through its sshd (the init of its namespaces). Entering it takes CAP_SYS_ADMIN in the
    /// user namespace that owns it: a normal user's process joins the keeper's first.
    pub fn net_ns(&self) -> std::io::Result<std::fs::File> {
        if is_root() {
            return std::fs::File::open(Path::new("/run/netns").join(self.netns()));
        }
        let pid = self.sshd_pid().ok_or_else(|| {
            std::io::Error::other(format!("{}: its sshd is not running", self.name))
        })?;
        std::fs::File::open(format!("/proc/{pid}/ns/net"))
    }

    /// Its line in the hosts' record (`Cluster::current` reads it back).
    pub(crate) fn record_line(&self) -> String {
        format!(
            "{} {} {} {} {}\n",
            self.name,
            self.addr,
            self.uid,
            self.user,
            self.home.display()
        )
    }

    /// The inode of the host's network namespace (what /proc/PID/ns/net links to).
    pub fn netns_inode(&self) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(Path::new("/run/netns").join(self.netns()))
            .ok()
            .map(|m| m.ino())
    }
}

/// Race injection on the hosts (`hosts up --race SEED`): the LD_PRELOAD shim of `grade --race`,
/// which each sshd sets with the seed for every session (sshd passes no environment of the
/// client's: its own `SetEnv` is the way in). A program that resets its environment escapes it:
/// the log each perturbed program appends to says which were.
#[derive(Debug, Clone)]
pub struct Race {
    pub seed: u64,
    /// The shim (`libipclab_race.so`), copied into the hosts' state where every host user
    /// can map it.
    pub shim: PathBuf,
}

/// The sshd_config line that perturbs every session on `h` (empty without race).
pub(crate) fn race_env(dir: &Path, h: &Host, race: Option<&Race>) -> String {
    race.map_or_else(String::new, |r| {
        format!(
            "SetEnv IPCLAB_RACE_SEED={} LD_PRELOAD={} IPCLAB_RACE_LOG={}\n",
            r.seed,
            dir.join("race.so").display(),
            race_log(h).display()
        )
    })
}

/// Where the programs perturbed on `h` note themselves: `HOST PID COMM` a line.
pub fn race_log(h: &Host) -> PathBuf {
    h.home.join(".ipclab-race.log")
}

/// The shim and the seed into the hosts' state (`dir`), for the sshds to name.
pub(crate) fn install_race(dir: &Path, race: &Race) -> Result<()> {
    let so = dir.join("race.so");
    std::fs::copy(&race.shim, &so).map_err(|e| Error::io(&e, "copy", race.shim.display()))?;
    std::fs::set_permissions(&so, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| Error::io(&e, "chmod", so.display()))?;
    write(&dir.join("race"), &format!("{}\n", race.seed), 0o644, None)
}

/// The hosts that are up, as `up` recorded them.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub hosts: Vec<Host>,
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The port the hosts' sshds listen on: 22 for root's, 2222 for a normal user's.
pub fn ssh_port() -> u16 {
    if is_root() {
        22
    } else {
        crate::hosts::user::SSH_PORT
    }
}

/// The hosts' state: root's under /run, a normal user's in a directory of theirs.
fn state() -> PathBuf {
    if is_root() {
        Path::new(sandbox::STATE).join("hosts")
    } else {
        crate::hosts::user::state_dir()
    }
}

/// The hosts' state directory (root's under /run, a normal user's of theirs): the relay keeps
/// its pid there too.
pub fn state_dir() -> PathBuf {
    state()
}

impl Cluster {
    /// The seed of the race injection the hosts were made with (`hosts up --race`), if any.
    pub fn race_seed(&self) -> Option<u64> {
        std::fs::read_to_string(state().join("race"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The hosts that are up, or None.
    pub fn current() -> Option<Cluster> {
        let text = std::fs::read_to_string(state().join("cluster")).ok()?;
        let hosts: Vec<Host> = text
            .lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let [name, addr, uid, user, home] = w[..] else {
                    return None;
                };
                Some(Host {
                    name: name.into(),
                    addr: addr.parse().ok()?,
                    uid: uid.parse().ok()?,
                    user: user.into(),
                    home: home.into(),
                })
            })
            .collect();
        (!hosts.is_empty()).then_some(Cluster { hosts })
    }

    pub fn host(&self, name: &str) -> Result<&Host> {
        self.hosts.iter().find(|h| h.name == name).ok_or_else(|| {
            Error::usage(format!(
                "no host {name}: the hosts are {}",
                self.names().join(", ")
            ))
        })
    }

    pub fn names(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.name.clone()).collect()
    }

    /// The machine file the course's launchers read: one hostname a line.
    pub fn machine_file(&self) -> String {
        self.names().iter().map(|n| format!("{n}\n")).collect()
    }

    /// Brings up `k` hosts; on any failure removes what it made and says why.
    pub fn up(k: usize, race: Option<&Race>) -> Result<Cluster> {
        if !(1..=MAX_HOSTS).contains(&k) {
            return Err(Error::usage(format!("bad host count {k}: 1..={MAX_HOSTS}")));
        }
        if !is_root() {
            // In a user namespace of the caller's (src/hosts/user.rs).
            return crate::hosts::user::up(k, race).map(|hosts| Cluster { hosts });
        }
        for tool in ["/usr/sbin/ip", SSHD, "/usr/bin/ssh-keygen", "/usr/bin/ssh"] {
            if !Path::new(tool).exists() {
                return Err(Error::runtime(format!(
                    "{tool} not found: apt-get install iproute2 openssh-server openssh-client"
                ))
                .with_code(3));
            }
        }
        let _lock = lock()?;
        if Cluster::current().is_some() || Path::new("/run/netns").join(HUB).exists() {
            return Err(Error::usage(
                "hosts are up already: ipclab hosts down first (ipclab hosts list names them)",
            ));
        }
        let made = build(k, race);
        if made.is_err() {
            // Nothing half-made stays: what was recorded and the namespaces go.
            teardown();
        }
        made
    }

    /// Removes every host: what runs in their namespaces or as their users, the namespaces, the
    /// boxes, the keys. What it removed, by name (empty: nothing was up).
    pub fn down() -> Result<Vec<String>> {
        if !is_root() {
            return crate::hosts::user::down();
        }
        let _lock = lock()?;
        Ok(teardown())
    }

    /// A command that runs `argv` on `host`: in its namespaces (network, hostname, mounts: its
    /// /etc/hosts and /proc, and its PID namespace, through a child), as its user, from its
    /// home, with a login's environment.
    pub fn exec(&self, host: &str, argv: &[String]) -> Result<Command> {
        use std::os::unix::process::CommandExt;
        let h = self.host(host)?;
        let Some(pid) = h.sshd_pid() else {
            return Err(
                Error::runtime(format!("host {host}: its sshd is not running")).with_code(3),
            );
        };
        let Some((prog, args)) = argv.split_first() else {
            return Err(Error::usage("hosts exec: no command given"));
        };
        let open = |what: &str| -> Result<OwnedFd> {
            let p = format!("/proc/{pid}/ns/{what}");
            std::fs::File::open(&p)
                .map(OwnedFd::from)
                .map_err(|e| Error::io(&e, "open", p).with_code(3))
        };
        // A normal user's hosts: the keeper's user namespace first, which owns the others.
        let userns = if is_root() {
            None
        } else {
            Some(crate::hosts::user::userns()?)
        };
        let fds = [open("net")?, open("uts")?, open("mnt")?, open("pid")?];
        let uid = h.uid;
        let drop_to = (uid != nix::unistd::getuid().as_raw()).then_some(uid);
        let home = h.home.clone();
        let mut c = Command::new(prog);
        c.args(args).env_clear().envs(login_env(h)).current_dir("/");
        // Safety: setns, chdir, the uid drop, fork, waitpid, prctl and _exit are plain
        // syscalls in the forked child.
        unsafe {
            c.pre_exec(move || {
                // This waiter dies with `hosts exec` (and the command with it, below): killing
                // the exec kills what it runs.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                for fd in userns.iter().chain(&fds) {
                    if libc::setns(fd.as_raw_fd(), 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some(uid) = drop_to {
                    sandbox::become_uid(uid).map_err(|(_, e)| std::io::Error::from(e))?;
                }
                std::env::set_current_dir(&home)?;
                // Joining a PID namespace applies to children only: the command runs in a
                // child, in the host's PID namespace (its /proc, its init reaping it), and this
                // process waits for it and exits as it did. The child dies with it.
                match libc::fork() {
                    -1 => Err(std::io::Error::last_os_error()),
                    0 => {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        Ok(())
                    }
                    child => {
                        libc::signal(libc::SIGINT, libc::SIG_IGN);
                        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
                        let mut st = 0;
                        while libc::waitpid(child, &mut st, 0) < 0 {}
                        libc::_exit(if libc::WIFEXITED(st) {
                            libc::WEXITSTATUS(st)
                        } else {
                            128 + libc::WTERMSIG(st)
                        })
                    }
                }
            });
        }
        Ok(c)
    }
}

/// What a session on `h` gets, as sshd would give it.
fn login_env(h: &Host) -> Vec<(String, String)> {
    let mut env = vec![
        ("HOME".to_string(), h.home.display().to_string()),
        ("USER".to_string(), h.user.clone()),
        ("LOGNAME".to_string(), h.user.clone()),
        ("SHELL".to_string(), "/bin/sh".to_string()),
        (
            "PATH".to_string(),
            "/usr/local/bin:/usr/bin:/bin".to_string(),
        ),
    ];
    if let Ok(lang) = std::env::var("LANG") {
        env.push(("LANG".into(), lang));
    }
    env
}

/// One `up` or `down` at a time on this machine.
fn lock() -> Result<nix::fcntl::Flock<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = Path::new(sandbox::STATE);
    std::fs::create_dir_all(dir).map_err(|e| Error::io(&e, "mkdir", dir.display()))?;
    let p = dir.join("hosts.lock");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&p)
        .map_err(|e| Error::io(&e, "open", p.display()).with_code(3))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::sys(e, "flock", p.display()).with_code(3))
}

fn ip(args: &[&str]) -> Result<()> {
    run("/usr/sbin/ip", args)
}

fn run(prog: &str, args: &[&str]) -> Result<()> {
    let mut c = Command::new(prog);
    c.args(args);
    checked(&mut c, prog, &format!("{prog} {}", args.join(" ")))
}

/// Runs `c` (stdin /dev/null) to its end; a failure is its stderr, said as `what: ...`.
pub(crate) fn checked(c: &mut Command, prog: &str, what: &str) -> Result<()> {
    let out = c
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::io(&e, "exec", prog).with_code(3))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::runtime(format!(
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    ))
    .with_code(3))
}

pub(crate) fn write(path: &Path, text: &str, mode: u32, owner: Option<u32>) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(&e, "write", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(&e, "chmod", path.display()))?;
    if let Some(u) = owner {
        nix::unistd::chown(path, Some(u.into()), Some(u.into()))
            .map_err(|e| Error::sys(e, "chown", path.display()))?;
    }
    Ok(())
}

pub(crate) fn mkdir(path: &Path, mode: u32, owner: Option<u32>) -> Result<()> {
    std::fs::create_dir(path).map_err(|e| Error::io(&e, "mkdir", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(&e, "chmod", path.display()))?;
    if let Some(u) = owner {
        nix::unistd::chown(path, Some(u.into()), Some(u.into()))
            .map_err(|e| Error::sys(e, "chown", path.display()))?;
    }
    Ok(())
}

pub(crate) fn keygen(path: &Path, comment: &str) -> Result<String> {
    let p = path.display().to_string();
    run(
        "/usr/bin/ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", &p],
    )?;
    let pubf = format!("{p}.pub");
    std::fs::read_to_string(&pubf)
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::io(&e, "read", pubf))
}

fn build(k: usize, race: Option<&Race>) -> Result<Cluster> {
    let dir = state();
    mkdir(&dir, 0o711, None)?;
    if let Some(r) = race {
        install_race(&dir, r)?;
    }
    // The run's client key: every host user gets it, and so does the caller (`hosts exec` is
    // the usual way in; the key lets an ssh run inside any host reach any other).
    let key = dir.join("id_ed25519");
    let client_pub = keygen(&key, "ipclab-hosts")?;
    write(
        &dir.join("authorized_keys"),
        &format!("{client_pub}\n"),
        0o644,
        None,
    )?;
    ip(&["netns", "add", HUB])?;
    ip(&["-n", HUB, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", HUB, "link", "set", "br0", "up"])?;
    let mut hosts = Vec::new();
    let mut record = String::new();
    for i in 1..=k {
        let name = format!("h{i}");
        let hb = HostBox::create(&name)?;
        let h = Host {
            addr: address(i),
            uid: hb.uid,
            user: format!("{name}-user"),
            home: hb.root.join("home"),
            name,
        };
        // Recorded before its namespace is made, so a failure from here on is torn down.
        record.push_str(&h.record_line());
        write(&dir.join("cluster"), &record, 0o644, None)?;
        link(&h, i)?;
        hosts.push(h);
    }
    let mut known = String::new();
    for h in &hosts {
        let host_pub = keygen(&h.root().join("host_key"), &h.name)?;
        known.push_str(&format!("{},{} {host_pub}\n", h.name, h.addr));
    }
    let etc_hosts = etc_hosts(&hosts);
    let ssh_config = client_config(&hosts, None, "~/.ssh/id_ed25519", "~/.ssh/known_hosts");
    write(&dir.join("known_hosts"), &known, 0o644, None)?;
    write(&dir.join("ssh_config"), &ssh_config, 0o644, None)?;
    write(&dir.join("machines"), &machine_lines(&hosts), 0o644, None)?;
    for h in &hosts {
        let etc = h.root().join("etc");
        write(&etc.join("hosts"), &etc_hosts, 0o644, None)?;
        let ssh = h.home.join(".ssh");
        mkdir(&ssh, 0o700, Some(h.uid))?;
        let secret = std::fs::read_to_string(&key).map_err(|e| Error::io(&e, "read", "key"))?;
        write(&ssh.join("id_ed25519"), &secret, 0o600, Some(h.uid))?;
        write(&ssh.join("known_hosts"), &known, 0o644, Some(h.uid))?;
        write(&ssh.join("config"), &ssh_config, 0o644, Some(h.uid))?;
        write(
            &h.home.join("machines"),
            &machine_lines(&hosts),
            0o644,
            Some(h.uid),
        )?;
        start_sshd(h, &dir, race)?;
    }
    for h in &hosts {
        wait_listening(h)?;
    }
    Ok(Cluster { hosts })
}

/// The address of host `i` (h1 is .1): in our namespaces only.
pub(crate) fn address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], i as u8)
}

/// /etc/hosts inside every host: localhost and each host by name.
pub(crate) fn etc_hosts(hosts: &[Host]) -> String {
    std::iter::once("127.0.0.1\tlocalhost\n".to_string())
        .chain(hosts.iter().map(|h| format!("{}\t{}\n", h.addr, h.name)))
        .collect()
}

pub(crate) fn machine_lines(hosts: &[Host]) -> String {
    hosts.iter().map(|h| format!("{}\n", h.name)).collect()
}

/// The host's end of a veth pair in its namespace (eth0, its address), the other end on the
/// hub's bridge.
fn link(h: &Host, i: usize) -> Result<()> {
    let ns = h.netns();
    let peer = format!("v{}", h.name);
    ip(&["netns", "add", &ns])?;
    ip(&[
        "link", "add", &peer, "netns", HUB, "type", "veth", "peer", "name", "eth0", "netns", &ns,
    ])?;
    ip(&["-n", HUB, "link", "set", &peer, "master", "br0", "up"])?;
    let cidr = format!("{}/24", h.addr);
    ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
    ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
    ip(&["-n", &ns, "link", "set", "lo", "up"])?;
    let _ = i;
    if Path::new("/usr/sbin/nft").exists() {
        // The relay's NAT chain, empty until `relay on`: with it conntrack follows every
        // connection from its first packet, so a redirect added later applies to new ones
        // only (added later, it would see an open connection mid-stream as new and cut it).
        // A chain's hook alone does not start conntrack: a rule with a ct match does.
        nft(h, &relay_chains())?;
    }
    Ok(())
}

/// The relay's chains, made by `hosts up` in each host (see `link`).
pub(crate) fn relay_chains() -> String {
    format!("add table ip {RELAY_TABLE} ; add chain ip {RELAY_TABLE} track {{ type filter hook output priority -200 ; }} ; add rule ip {RELAY_TABLE} track ct state new counter ; add chain ip {RELAY_TABLE} out {{ type nat hook output priority -100 ; }}")
}

/// The nftables table of the relay (src/relay.rs) in each host's namespace.
pub const RELAY_TABLE: &str = "ipclab_relay";

/// ~/.ssh/config of every host user: each host by name and address, with its user (and the
/// sshd's port when it is not 22: a normal user's hosts), the run's key and known hosts.
pub(crate) fn client_config(
    hosts: &[Host],
    port: Option<u16>,
    identity: &str,
    known_hosts: &str,
) -> String {
    let mut s = String::from("# Written by ipclab hosts up: the run's hosts, keys and users.\n");
    for h in hosts {
        s.push_str(&format!(
            "Host {} {}\n    HostName {}\n    User {}\n",
            h.name, h.addr, h.addr, h.user
        ));
        if let Some(p) = port {
            s.push_str(&format!("    Port {p}\n"));
        }
    }
    s.push_str(&format!(
        "Host *\n    IdentityFile {identity}\n    UserKnownHostsFile {known_hosts}\n    \
         StrictHostKeyChecking yes\n    BatchMode yes\n    LogLevel ERROR\n"
    ));
    s
}

/// sshd in the host's namespaces: its network, its own hostname, its own /etc/hosts, passwd
/// and group bound over the machine's (a mount namespace of its own, so nothing else sees them),
/// and a PID namespace whose init it is: what runs on the host (sessions, daemons a student
/// leaves behind) is reaped by it, and killing it makes the kernel kill and reap all of them —
/// nothing of the host's user is left for a PID 1 that reaps late (or never).
fn start_sshd(h: &Host, dir: &Path, race: Option<&Race>) -> Result<()> {
    let root = h.root();
    let config = format!(
        "# Written by ipclab hosts up for {name}.\n\
         ListenAddress {addr}\nPort 22\nHostKey {root}/host_key\nPidFile none\n\
         AuthorizedKeysFile {dir}/authorized_keys\nAllowUsers {user}\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
         PermitRootLogin no\nPrintMotd no\nPrintLastLog no\nAcceptEnv LANG LC_*\n\
         Subsystem sftp internal-sftp\n{race}",
        name = h.name,
        addr = h.addr,
        root = root.display(),
        dir = dir.display(),
        user = h.user,
        race = race_env(dir, h, race),
    );
    let cfg = root.join("sshd_config");
    write(&cfg, &config, 0o644, None)?;
    // sshd's privilege-separation directory, which Debian's service script would make.
    let privsep = Path::new("/run/sshd");
    if !privsep.exists() {
        mkdir(privsep, 0o755, None)?;
    }
    let log = root.join("sshd.log").display().to_string();
    let netns = std::fs::File::open(Path::new("/run/netns").join(h.netns()))
        .map_err(|e| Error::io(&e, "open", h.netns()))?;
    let etc = root.join("etc");
    let binds = ["hosts", "passwd", "group"]
        .iter()
        .map(|f| (etc.join(f), PathBuf::from(format!("/etc/{f}"))))
        .collect();
    let pid = start_sshd_init(
        &h.name,
        &cfg,
        &log,
        Init {
            netns: Some(netns),
            binds,
            clear_ambient: false,
        },
    )
    .map_err(|e| Error::runtime(e).with_code(3))?;
    write(&root.join("sshd.pid"), &format!("{pid}\n"), 0o644, None)
}

/// How a host's init differs between root's hosts and a normal user's.
pub(crate) struct Init {
    /// The host's network namespace to enter; None: a new one.
    pub netns: Option<std::fs::File>,
    /// Files bound over the machine's (its /etc/hosts, passwd, group), in its mount namespace.
    pub binds: Vec<(PathBuf, PathBuf)>,
    /// Drop the ambient capabilities (a normal user's keeper holds some for ip and nft).
    pub clear_ambient: bool,
}

/// sshd (config `cfg`, log `log`) as the init of the host's PID namespace, with its own mount
/// and UTS namespaces (hostname `name`) and the network namespace `init` says; what a session
/// leaves running is reaped there, and killing the sshd makes the kernel kill and reap all of
/// it. A bad configuration is said at once, in sshd's words. Its pid as the caller sees it.
pub(crate) fn start_sshd_init(
    name: &str,
    cfg: &Path,
    log: &str,
    init: Init,
) -> std::result::Result<i32, String> {
    use std::os::unix::process::CommandExt;
    let cfg = cfg.display().to_string();
    let test = Command::new(SSHD)
        .args(["-t", "-f", &cfg])
        .env_clear()
        .output()
        .map_err(|e| format!("exec {SSHD}: {e}"))?;
    if !test.status.success() {
        return Err(format!(
            "sshd for {name}: {}",
            String::from_utf8_lossy(&test.stderr).trim()
        ));
    }
    let to_c = |p: &Path| std::ffi::CString::new(p.display().to_string()).ok();
    let binds: Vec<(std::ffi::CString, std::ffi::CString)> = init
        .binds
        .iter()
        .filter_map(|(src, dst)| Some((to_c(src)?, to_c(dst)?)))
        .collect();
    let (netns, clear_ambient) = (init.netns, init.clear_ambient);
    let hostname = name.to_string();
    // The intermediate child tells the sshd's pid (as this namespace sees it) through this pipe.
    let (pid_r, pid_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe2: {e}"))?;
    let pid_w_fd = pid_w.as_raw_fd();
    let mut c = Command::new(SSHD);
    c.args(["-D", "-f", &cfg, "-E", log])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // Safety: only syscalls in the forked child (setns, unshare, mount, sethostname, fork,
    // write, prctl, _exit); the intermediate child never returns to code that allocates.
    unsafe {
        c.pre_exec(move || {
            let check = |r: libc::c_int| {
                if r != 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(())
                }
            };
            let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWPID;
            match &netns {
                Some(ns) => check(libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET))?,
                None => flags |= libc::CLONE_NEWNET,
            }
            check(libc::unshare(flags))?;
            check(libc::mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            for (src, dst) in &binds {
                check(libc::mount(
                    src.as_ptr(),
                    dst.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ))?;
            }
            check(libc::sethostname(
                hostname.as_ptr() as *const libc::c_char,
                hostname.len(),
            ))?;
            // unshare(CLONE_NEWPID) puts this process's children in the new namespace, not
            // itself: its child is the host's init and execs sshd; it leaves at once.
            match libc::fork() {
                -1 => return Err(std::io::Error::last_os_error()),
                0 => {}
                pid => {
                    let b = pid.to_ne_bytes();
                    let ok = libc::write(pid_w_fd, b.as_ptr().cast(), b.len()) == b.len() as isize;
                    libc::_exit(if ok { 0 } else { 1 });
                }
            }
            // The host's own /proc: ps in a session shows the host's processes and pids.
            check(libc::mount(
                c"proc".as_ptr(),
                c"/proc".as_ptr(),
                c"proc".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            ))?;
            if clear_ambient {
                // sshd and the sessions it starts hold no capability at all.
                check(libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_CLEAR_ALL,
                    0,
                    0,
                    0,
                ))?;
            }
            Ok(())
        });
    }
    let mut child = c.spawn().map_err(|e| format!("exec {SSHD}: {e}"))?;
    drop(pid_w);
    let status = child.wait().map_err(|e| format!("wait sshd: {e}"))?;
    let mut b = [0u8; 4];
    let got = std::io::Read::read_exact(&mut std::fs::File::from(pid_r), &mut b);
    if !status.success() || got.is_err() {
        return Err(format!(
            "sshd for {name}: its namespaces could not be made ({status})"
        ));
    }
    Ok(i32::from_ne_bytes(b))
}

/// Until the host's sshd accepts a connection on its address, from inside the host's network
/// (safety net READY); at once if it died.
fn wait_listening(h: &Host) -> Result<()> {
    let deadline = Instant::now() + READY;
    let addr = std::net::SocketAddr::from((h.addr, 22));
    loop {
        if h.sshd_pid().is_none() {
            return Err(Error::runtime(format!(
                "sshd for {} exited: {}",
                h.name,
                std::fs::read_to_string(h.root().join("sshd.log"))
                    .map(|l| l.trim().replace('\n', "; "))
                    .unwrap_or_default()
            ))
            .with_code(3));
        }
        if connect_in(h, addr).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::runtime(format!(
                "sshd for {} did not listen on {addr} within {} s (see {})",
                h.name,
                READY.as_secs(),
                h.root().join("sshd.log").display()
            ))
            .with_code(3));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A TCP connection made from inside `h`'s network namespace (a thread enters it: a socket
/// belongs to the namespace it was made in, so the caller can use it afterwards).
pub fn connect_in(h: &Host, addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpStream> {
    let ns = h.net_ns()?;
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("connect thread panicked")))
    })
}

/// Everything of the hosts goes, whatever state a failed or interrupted `up` left.
fn teardown() -> Vec<String> {
    let mut gone = Vec::new();
    let recorded = Cluster::current().map(|c| c.hosts).unwrap_or_default();
    // Host leases `up` made even if the record did not get them (h1, h2, ...).
    let mut names: Vec<String> = recorded.iter().map(|h| h.name.clone()).collect();
    for (_, n) in sandbox::Lease::persistent_list() {
        let numbered = n
            .strip_prefix('h')
            .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
        if numbered && !names.contains(&n) {
            names.push(n);
        }
    }
    // Namespaces by name: every ipclab-hN, and the hub.
    let mut spaces: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| {
                    n == HUB
                        || n.strip_prefix("ipclab-h")
                            .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
                })
                .collect()
        })
        .unwrap_or_default();
    spaces.sort();
    // What runs in those namespaces (sshd, sessions, lab programs): killed first.
    let inodes: Vec<u64> = spaces
        .iter()
        .filter_map(|n| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(Path::new("/run/netns").join(n))
                .ok()
                .map(|m| m.ino())
        })
        .collect();
    // The relay (src/relay.rs) holds sockets in the hosts' namespaces from the machine's own.
    if let Some(pid) = std::fs::read_to_string(state().join("relay.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    kill_in(&inodes);
    for n in &names {
        if HostBox::destroy(n).is_ok() {
            gone.push(n.clone());
        }
    }
    for n in &spaces {
        let _ = ip(&["netns", "del", n]);
    }
    let _ = std::fs::remove_dir_all(state());
    gone
}

/// SIGKILLs every process whose network namespace is one of `inodes`, until none is left.
fn kill_in(inodes: &[u64]) {
    if inodes.is_empty() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut any = false;
        for (pid, _) in sandbox::process_uids() {
            let Ok(link) = std::fs::read_link(format!("/proc/{pid}/ns/net")) else {
                continue;
            };
            let ino = link
                .to_str()
                .and_then(|s| s.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok());
            if ino.is_some_and(|i| inodes.contains(&i))
                && crate::inspect::info(pid).is_some_and(|i| !i.is_zombie())
            {
                any = true;
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if !any || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Cluster {
    /// Cuts the links between the hosts of `a` and those of `b` (both ways): nftables in each
    /// host's namespace drops what it would send to or receive from the other side. Seeded fault
    /// schedules call it; `heal` undoes every cut.
    pub fn partition(&self, a: &[String], b: &[String]) -> Result<()> {
        let side = |names: &[String]| -> Result<Vec<&Host>> {
            names.iter().map(|n| self.host(n)).collect()
        };
        let (a, b) = (side(a)?, side(b)?);
        if a.is_empty() || b.is_empty() || a.iter().any(|h| b.iter().any(|g| g.name == h.name)) {
            return Err(Error::usage(
                "partition: two non-empty groups of hosts with none in both",
            ));
        }
        for (from, others) in [(&a, &b), (&b, &a)] {
            for h in from.iter() {
                let addrs: Vec<String> = others.iter().map(|o| o.addr.to_string()).collect();
                let set = addrs.join(", ");
                nft(
                    h,
                    &format!(
                        "add table inet ipclab ; \
                         add chain inet ipclab out {{ type filter hook output priority 0 ; }} ; \
                         add rule inet ipclab out ip daddr {{ {set} }} drop ; \
                         add chain inet ipclab in {{ type filter hook input priority 0 ; }} ; \
                         add rule inet ipclab in ip saddr {{ {set} }} drop"
                    ),
                )?;
            }
        }
        Ok(())
    }

    /// Every link back: the hosts' nftables tables removed.
    pub fn heal(&self) -> Result<()> {
        for h in &self.hosts {
            // A host never cut has no table: deleting it then fails, harmlessly.
            let _ = nft(h, "delete table inet ipclab");
        }
        Ok(())
    }
}

/// Runs an nft script inside `h`'s network namespace (the relay's redirect, a partition).
pub fn nft_in(h: &Host, script: &str) -> Result<()> {
    nft(h, script)
}

fn nft(h: &Host, script: &str) -> Result<()> {
    if !is_root() {
        return crate::hosts::user::nft(h, script);
    }
    run(
        "/usr/sbin/ip",
        &["netns", "exec", &h.netns(), "/usr/sbin/nft", script],
    )
}
