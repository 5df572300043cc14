//! The box an untrusted program runs in, after ioi/isolate: a uid of its own (leased, never shared
//! with a concurrent box), private network, IPC and mount namespaces, a size-bounded tmpfs that
//! holds its working directories and stands in for /tmp and /dev/shm, the checkout hidden, a
//! fixed environment, no inherited descriptor, rlimits, and a parent-death signal.
//!
//! Host side (`Lease`, `BoxDir`, `sweep`) and child side (`Plan::apply`, run between fork and
//! exec) live here; the grader decides what to put in a box, this module only builds it. Every
//! failure in the child is reported on the exec gate as (step, errno), so nothing can hang there.
//!
//! State lives in /run/ipclab (root, 0711): `leases/<uid>` (flock held by the owner, its pid
//! inside), `box-<uid>` (the tmpfs mount); /var/cache/ipclab/refs/<hash> holds execute-only
//! copies of the reference programs a contract runs. A box whose owner is gone — even after SIGKILL — is found by its
//! free lock or dead pid and removed by the next `sweep` (every `ipclab grade`, `ipclab clean`).

use crate::error::{Error, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::ffi::CString;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The uids ipclab leases to boxes, one per concurrent box.
pub const UID_FIRST: u32 = 61000;
pub const UID_LAST: u32 = 61999;
pub const STATE: &str = "/run/ipclab";
/// Cached copies of the reference programs: on disk, not in /run (often a small tmpfs).
pub const CACHE: &str = "/var/cache/ipclab";

/// Bit numbers in CapEff (linux/capability.h).
const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;
const CAP_SYS_ADMIN: u32 = 21;

/// This process's effective capabilities, as the CapEff bit mask of /proc/self/status.
fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|st| {
            st.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// What this process can build: a full box needs root with CAP_SYS_ADMIN (mounts, namespaces,
/// cgroups) and CAP_SETUID/SETGID (the uid drop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Powers {
    pub drop_uid: bool,
    pub namespaces: bool,
    /// A normal user may make user (and so PID, network, IPC) namespaces here.
    pub userns: bool,
}

pub fn powers() -> Powers {
    let root = nix::unistd::geteuid().is_root();
    let caps = effective_caps();
    let has = |bit: u32| caps & (1 << bit) != 0;
    Powers {
        drop_uid: root && has(CAP_SETUID) && has(CAP_SETGID),
        namespaces: root && has(CAP_SYS_ADMIN),
        userns: !root && userns_works(),
    }
}

/// Probes, in a forked child, what a normal user's box needs: unshare of user, PID, network
/// and IPC namespaces and the identity uid map (some kernels forbid it, or AppArmor strips the
/// capabilities it gives).
fn userns_works() -> bool {
    use nix::sched::{unshare, CloneFlags};
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    // Safety: the caller is single-threaded (the grader before any run); the child only makes
    // syscalls and _exits.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            // A non-dumpable process's /proc/self files are root's: uid_map could not be written.
            // Safety: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
            let ok = unshare(
                CloneFlags::CLONE_NEWUSER
                    | CloneFlags::CLONE_NEWPID
                    | CloneFlags::CLONE_NEWNET
                    | CloneFlags::CLONE_NEWIPC,
            )
            .is_ok()
                && std::fs::write("/proc/self/setgroups", "deny").is_ok()
                && std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1")).is_ok()
                && std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1")).is_ok();
            // Safety: _exit in the forked child.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => matches!(
            nix::sys::wait::waitpid(child, None),
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0))
        ),
        Err(_) => false,
    }
}

fn state_dir(sub: &str) -> Result<PathBuf> {
    root_dir(Path::new(STATE), sub)
}

/// `top/sub`, made if needed (0711), refused unless both are root's directories.
fn root_dir(top: &Path, sub: &str) -> Result<PathBuf> {
    for d in [top.to_path_buf(), top.join(sub)] {
        match std::fs::create_dir(&d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(&e, "mkdir", d.display()).with_code(3)),
        }
        // Refuse a planted link or a directory someone else owns.
        let md = std::fs::symlink_metadata(&d).map_err(|e| Error::io(&e, "lstat", d.display()))?;
        if !md.is_dir() || std::os::unix::fs::MetadataExt::uid(&md) != 0 {
            return Err(Error::runtime(format!(
                "{} is not a directory owned by root: refusing to use it",
                d.display()
            ))
            .with_code(3));
        }
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o711));
    }
    Ok(top.join(sub))
}

/// A uid held for one box (or several boxes in turn) while this lease lives.
pub struct Lease {
    uid: u32,
    _lock: Flock<File>,
}

impl Lease {
    /// The first free uid of the range: its lock free, no passwd entry, no process running as it.
    /// Whatever a dead owner left under that uid is removed first.
    pub fn claim() -> Result<Lease> {
        let dir = state_dir("leases")?;
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let taken: std::collections::BTreeSet<u32> = passwd
            .lines()
            .filter_map(|l| l.split(':').nth(2)?.parse().ok())
            .collect();
        let running = uids_running();
        for uid in UID_FIRST..=UID_LAST {
            if taken.contains(&uid) {
                continue;
            }
            let path = dir.join(uid.to_string());
            let Some(lock) = try_lock(&path)? else {
                continue;
            };
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            // A host box's: only its owner's teardown ends it.
            if text.starts_with("persistent") {
                continue;
            }
            // A dead grader's box (its processes, mount, cgroups) goes before the uid is reused.
            if text.starts_with("pid ") {
                remove_box_of(uid);
            }
            // Processes of a uid no lease of ours names are someone else's: never killed, skipped.
            if running.contains(&uid) && uids_running().contains(&uid) {
                continue;
            }
            let lease = Lease { uid, _lock: lock };
            lease.write_owner(&format!("pid {}", std::process::id()));
            return Ok(lease);
        }
        Err(Error::runtime(format!(
            "no free uid in {UID_FIRST}..={UID_LAST} for a grading box"
        ))
        .with_code(3))
    }

    /// A uid whose lease the parent process holds (batch grading hands each job its slot's).
    pub fn check_held_by_parent(uid: u32) -> Result<()> {
        if !(UID_FIRST..=UID_LAST).contains(&uid) {
            return Err(Error::usage(format!(
                "--uid {uid}: only a leased box uid ({UID_FIRST}..={UID_LAST})"
            )));
        }
        let path = Path::new(STATE).join("leases").join(uid.to_string());
        let owner: Option<i32> = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().strip_prefix("pid ")?.parse().ok());
        let parent = nix::unistd::getppid().as_raw();
        let locked = try_lock(&path).ok().is_some_and(|l| l.is_none());
        if owner == Some(parent) && locked {
            Ok(())
        } else {
            Err(Error::usage(format!(
                "--uid {uid}: its lease is not held by the calling ipclab"
            )))
        }
    }

    pub fn uid(&self) -> u32 {
        self.uid
    }

    fn write_owner(&self, line: &str) {
        use std::io::{Seek, Write};
        let mut f: &File = &self._lock;
        let _ = f.set_len(0);
        let _ = f.rewind();
        let _ = writeln!(f, "{line}");
    }

    /// A long-lived host box's uid (the distributed labs' hosts): leased under `name` beyond
    /// this process's life. `sweep` and `claim` leave it alone; only `end_persistent` (its
    /// owner's teardown) removes it and what runs as it.
    pub fn persistent(name: &str) -> Result<u32> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(Error::usage(format!(
                "host name {name:?}: letters, digits and '-' only"
            )));
        }
        if let Some((uid, _)) = Lease::persistent_list()
            .into_iter()
            .find(|(_, n)| n == name)
        {
            return Err(Error::usage(format!(
                "host {name} exists already (uid {uid})"
            )));
        }
        let l = Lease::claim()?;
        l.write_owner(&format!("persistent {name} pid {}", std::process::id()));
        Ok(l.uid)
    }

    /// The host boxes' leases: (uid, name).
    pub fn persistent_list() -> Vec<(u32, String)> {
        let mut v = Vec::new();
        if let Ok(rd) = std::fs::read_dir(Path::new(STATE).join("leases")) {
            for e in rd.flatten() {
                let Some(uid) = e.file_name().to_str().and_then(|n| n.parse().ok()) else {
                    continue;
                };
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                if let Some(name) = text
                    .strip_prefix("persistent ")
                    .and_then(|r| r.split_whitespace().next())
                {
                    v.push((uid, name.to_string()));
                }
            }
        }
        v.sort();
        v
    }

    /// Ends host `name`'s lease: kills what runs as its uid, removes its box, frees the uid.
    pub fn end_persistent(name: &str) -> Result<u32> {
        let Some((uid, _)) = Lease::persistent_list()
            .into_iter()
            .find(|(_, n)| n == name)
        else {
            return Err(Error::usage(format!("no host {name}")));
        };
        let path = Path::new(STATE).join("leases").join(uid.to_string());
        let lock = try_lock(&path)?
            .ok_or_else(|| Error::runtime(format!("host {name}'s lease is busy")).with_code(3))?;
        remove_box_of(uid);
        let l = Lease { uid, _lock: lock };
        l.write_owner("");
        Ok(uid)
    }
}

/// A long-lived host box (the distributed labs' hosts): a named persistent lease, its user in a
/// passwd and group of its own, a home. The hosts issue adds the network namespace and the sshd
/// run as root inside it, whose sessions drop to `uid`; `ipclab clean` and the stale-box sweep
/// leave it alone — only `destroy` (its owner's teardown) removes it.
pub struct HostBox {
    pub name: String,
    pub uid: u32,
    /// /run/ipclab/host-<name>: `home/` (the user's, 0700), `etc/passwd`, `etc/group`.
    pub root: PathBuf,
}

impl HostBox {
    pub fn create(name: &str) -> Result<HostBox> {
        let uid = Lease::persistent(name)?;
        let root = state_dir("")?.join(format!("host-{name}"));
        let made = (|| -> Result<HostBox> {
            let io =
                |e: std::io::Error, op: &str, p: &Path| Error::io(&e, op, p.display()).with_code(3);
            std::fs::create_dir(&root).map_err(|e| io(e, "mkdir", &root))?;
            std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o711))
                .map_err(|e| io(e, "chmod", &root))?;
            let home = root.join("home");
            let etc = root.join("etc");
            std::fs::create_dir(&home).map_err(|e| io(e, "mkdir", &home))?;
            std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| io(e, "chmod", &home))?;
            nix::unistd::chown(&home, Some(uid.into()), Some(uid.into()))
                .map_err(|e| Error::sys(e, "chown", home.display()).with_code(3))?;
            std::fs::create_dir(&etc).map_err(|e| io(e, "mkdir", &etc))?;
            let user = format!("{name}-user");
            for (file, line) in [
                (
                    "passwd",
                    format!(
                        "{user}:x:{uid}:{uid}:ipclab host {name}:{}:/bin/sh\n",
                        home.display()
                    ),
                ),
                ("group", format!("{user}:x:{uid}:\n")),
            ] {
                let mut text = std::fs::read_to_string(format!("/etc/{file}")).unwrap_or_default();
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(&line);
                let p = etc.join(file);
                std::fs::write(&p, text).map_err(|e| io(e, "write", &p))?;
            }
            Ok(HostBox {
                name: name.to_string(),
                uid,
                root: root.clone(),
            })
        })();
        if made.is_err() {
            // Nothing half-made stays: the directory and the lease go.
            let _ = std::fs::remove_dir_all(&root);
            let _ = Lease::end_persistent(name);
        }
        made
    }

    /// Every host box of this machine, by its lease.
    pub fn list() -> Vec<HostBox> {
        Lease::persistent_list()
            .into_iter()
            .map(|(uid, name)| HostBox {
                root: Path::new(STATE).join(format!("host-{name}")),
                name,
                uid,
            })
            .collect()
    }

    /// Kills what runs as the host's uid, removes its directory, ends its lease.
    pub fn destroy(name: &str) -> Result<()> {
        Lease::end_persistent(name)?;
        let root = Path::new(STATE).join(format!("host-{name}"));
        if root.exists() {
            std::fs::remove_dir_all(&root)
                .map_err(|e| Error::io(&e, "rm -r", root.display()).with_code(3))?;
        }
        Ok(())
    }
}

impl Drop for Lease {
    /// A lease given back names no box: the next sweep has nothing to look for.
    fn drop(&mut self) {
        let text =
            std::fs::read_to_string(Path::new(STATE).join("leases").join(self.uid.to_string()))
                .unwrap_or_default();
        if text.starts_with(&format!("pid {}\n", std::process::id())) {
            self.write_owner("");
        }
    }
}

/// Ok(Some(lock)) if we got the lock, Ok(None) if someone holds it.
fn try_lock(path: &Path) -> Result<Option<Flock<File>>> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::io(&e, "open", path.display()).with_code(3))?;
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(Some(l)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(Error::sys(e, "flock", path.display()).with_code(3)),
    }
}

fn uids_running() -> std::collections::BTreeSet<u32> {
    process_uids().into_iter().map(|(_, u)| u).collect()
}

/// (pid, uid) of every process: the owner of /proc/PID, one stat each (no /proc/PID/stat
/// parsing: this runs on every grading).
pub fn process_uids() -> Vec<(i32, u32)> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let md = std::fs::symlink_metadata(e.path()).ok()?;
            Some((pid, std::os::unix::fs::MetadataExt::uid(&md)))
        })
        .collect()
}

/// Kills every process of `uid` and removes its box mount: only ever for a leased uid whose lock
/// we hold, so nothing else runs as it.
fn remove_box_of(uid: u32) {
    for _ in 0..50 {
        let mut any = false;
        for p in crate::inspect::all() {
            let owned = std::fs::metadata(format!("/proc/{}", p.pid))
                .is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == uid);
            if owned && !p.is_zombie() {
                any = true;
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if !any {
            break;
        }
        let _ = crate::signals::poll_fds(&[], Some(std::time::Duration::from_millis(10)));
    }
    let b = Path::new(STATE).join(format!("box-{uid}"));
    if b.exists() {
        let _ = nix::mount::umount2(&b, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir_all(&b);
    }
}

/// Removes what dead owners left: boxes of leases nobody holds, cached references of builds gone,
/// `/tmp/ipclab-grade-<pid>-*` of dead pids, cgroups `ipclab-grade-<pid>-*` of dead pids (killing
/// their members first). Leases marked `persistent` (host boxes) are left to their owner's
/// teardown. Returns one line per thing removed.
pub fn sweep() -> Vec<String> {
    let mut done = Vec::new();
    let dead = |pid: i32| pid > 0 && !owner_alive(pid);
    if nix::unistd::geteuid().is_root() {
        let mut running: Option<std::collections::BTreeSet<u32>> = None;
        if let Ok(rd) = std::fs::read_dir(Path::new(STATE).join("leases")) {
            for e in rd.flatten() {
                let Some(uid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                    continue;
                };
                let Ok(Some(lock)) = try_lock(&e.path()) else {
                    continue;
                };
                // Host boxes are their owner's to end; an empty lease names no box.
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                if !text.starts_with("pid ") {
                    continue;
                }
                let b = Path::new(STATE).join(format!("box-{uid}"));
                if b.exists() || running.get_or_insert_with(uids_running).contains(&uid) {
                    remove_box_of(uid);
                    done.push(format!("removed the box of uid {uid} (its grader is gone)"));
                }
                Lease { uid, _lock: lock }.write_owner("");
            }
        }
        sweep_refs(&mut done);
        for base in [
            "/sys/fs/cgroup/pids",
            "/sys/fs/cgroup/freezer",
            "/sys/fs/cgroup",
        ] {
            let Ok(rd) = std::fs::read_dir(base) else {
                continue;
            };
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if grade_owner(&n).is_some_and(dead) {
                    kill_cgroup(&e.path());
                    if std::fs::remove_dir(e.path()).is_ok() {
                        done.push(format!("removed cgroup {}", e.path().display()));
                    }
                }
            }
        }
    }
    let me = nix::unistd::geteuid().as_raw();
    if let Ok(rd) = std::fs::read_dir("/tmp") {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let pid = grade_owner(&n);
            let ours = std::fs::symlink_metadata(e.path())
                .is_ok_and(|m| m.is_dir() && std::os::unix::fs::MetadataExt::uid(&m) == me);
            if ours && pid.is_some_and(dead) {
                let _ = std::fs::remove_dir_all(e.path());
                done.push(format!("removed {}", e.path().display()));
            }
        }
    }
    done
}

/// The grader pid in a name `ipclab-grade-<pid>-...` (cgroups, scratch directories).
fn grade_owner(name: &str) -> Option<i32> {
    name.strip_prefix("ipclab-grade-")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// An ipclab process with this pid still runs (a reused pid running something else does not count).
fn owner_alive(pid: i32) -> bool {
    crate::inspect::info(pid).is_some_and(|i| !i.is_zombie() && i.comm.starts_with("ipclab"))
}

/// Every member of a cgroup killed, none able to fork meanwhile: cgroup.kill (v2), or freeze,
/// kill, thaw (v1 freezer; the pids hierarchy alone cannot stop a fork race).
pub fn kill_cgroup(dir: &Path) {
    if dir.join("cgroup.kill").exists() {
        let _ = std::fs::write(dir.join("cgroup.kill"), "1");
        return;
    }
    let freezer = dir.join("freezer.state");
    let frozen = freezer.exists() && std::fs::write(&freezer, "FROZEN").is_ok();
    if frozen {
        for _ in 0..200 {
            if std::fs::read_to_string(&freezer).is_ok_and(|s| s.trim() == "FROZEN") {
                break;
            }
            let _ = crate::signals::poll_fds(&[], Some(std::time::Duration::from_millis(1)));
        }
    }
    for pid in std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse::<i32>().ok())
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    if frozen {
        let _ = std::fs::write(&freezer, "THAWED");
    }
}

/// The directories of one box, as the host sees them (inside, `tmp` is /tmp and `shm` /dev/shm).
pub struct BoxDir {
    pub root: PathBuf,
    /// A tmpfs mounted by us (root), else a temporary directory in /tmp.
    pub mounted: bool,
    pub size_mb: u64,
    temp: Option<tempfile::TempDir>,
}

impl BoxDir {
    /// A fresh box: `/run/ipclab/box-<uid>` on its own tmpfs of `size_mb` (root with
    /// CAP_SYS_ADMIN), else `/tmp/ipclab-grade-<pid>-XXXX` on the shared disk.
    pub fn new(uid: Option<u32>, mount: bool, size_mb: u64) -> Result<BoxDir> {
        let h = |e: Error| e.with_code(3);
        if let (Some(uid), true) = (uid, mount) {
            let root = state_dir("")?.join(format!("box-{uid}"));
            if root.exists() {
                // The lease is ours: what is there is a dead owner's.
                remove_box_of(uid);
            }
            std::fs::create_dir(&root).map_err(|e| h(Error::io(&e, "mkdir", root.display())))?;
            let opts = format!("size={size_mb}m,mode=0711,nr_inodes=65536");
            if let Err(e) = nix::mount::mount(
                Some("ipclab-box"),
                &root,
                Some("tmpfs"),
                nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
                Some(opts.as_str()),
            ) {
                let _ = std::fs::remove_dir(&root);
                return Err(h(Error::sys(e, "mount tmpfs", root.display())));
            }
            let b = BoxDir {
                root,
                mounted: true,
                size_mb,
                temp: None,
            };
            for (d, mode, owner) in [
                ("cwd", 0o700, Some(uid)),
                ("dir", 0o700, Some(uid)),
                ("tmp", 0o1777, None),
                ("shm", 0o1777, None),
                ("etc", 0o755, None),
                ("mnt", 0o700, None),
            ] {
                b.mkdir(d, mode, owner)?;
            }
            return Ok(b);
        }
        let temp = tempfile::Builder::new()
            .prefix(&format!("ipclab-grade-{}-", std::process::id()))
            .tempdir_in("/tmp")
            .map_err(|e| h(Error::io(&e, "mkdir", "/tmp/ipclab-grade-*")))?;
        // 0711: the box's uid may traverse to its own directories, not list ours.
        let _ = std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o711));
        let b = BoxDir {
            root: temp.path().to_path_buf(),
            mounted: false,
            size_mb,
            temp: Some(temp),
        };
        b.mkdir("cwd", 0o700, uid)?;
        b.mkdir("dir", 0o700, uid)?;
        Ok(b)
    }

    fn mkdir(&self, name: &str, mode: u32, owner: Option<u32>) -> Result<()> {
        let d = self.root.join(name);
        std::fs::create_dir(&d).map_err(|e| Error::io(&e, "mkdir", d.display()).with_code(3))?;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(&e, "chmod", d.display()).with_code(3))?;
        if let Some(u) = owner {
            nix::unistd::chown(&d, Some(u.into()), Some(u.into()))
                .map_err(|e| Error::sys(e, "chown", d.display()).with_code(3))?;
        }
        Ok(())
    }

    pub fn cwd(&self) -> PathBuf {
        self.root.join("cwd")
    }
    pub fn dir(&self) -> PathBuf {
        self.root.join("dir")
    }
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }
    pub fn shm(&self) -> PathBuf {
        self.root.join("shm")
    }

    /// cwd and DIR shared with a second uid of the box (group `gid`, 0770): a reference program
    /// running as that uid beside the implementation (lab 4's watchdog) works in them too.
    pub fn share_with(&self, gid: u32) -> Result<()> {
        for d in [self.cwd(), self.dir()] {
            nix::unistd::chown(&d, None, Some(gid.into()))
                .map_err(|e| Error::sys(e, "chown", d.display()).with_code(3))?;
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o770))
                .map_err(|e| Error::io(&e, "chmod", d.display()).with_code(3))?;
        }
        Ok(())
    }

    /// A directory only `uid` (and we) can reach: where a reference program running as `uid`
    /// leaves its evidence out of the implementation's reach.
    pub fn private_to(&self, uid: u32) -> Result<PathBuf> {
        let name = format!("ref-{uid}");
        if !self.root.join(&name).exists() {
            self.mkdir(&name, 0o700, Some(uid))?;
        }
        Ok(self.root.join(name))
    }

    /// passwd and group with the box's user (ssh, sshd and OpenMPI refuse a nameless uid).
    pub fn write_identity(&self, users: &[(u32, String)]) -> Result<()> {
        let add = |file: &str, lines: String| -> Result<()> {
            let mut text = std::fs::read_to_string(format!("/etc/{file}")).unwrap_or_default();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&lines);
            let p = self.root.join("etc").join(file);
            std::fs::write(&p, text).map_err(|e| Error::io(&e, "write", p.display()).with_code(3))
        };
        let home = self.cwd().display().to_string();
        add(
            "passwd",
            users
                .iter()
                .map(|(u, n)| format!("{n}:x:{u}:{u}:ipclab box:{home}:/bin/sh\n"))
                .collect(),
        )?;
        add(
            "group",
            users.iter().map(|(u, n)| format!("{n}:x:{u}:\n")).collect(),
        )
    }

    /// Accounts of a lab's own added to the box's passwd and group (lab 9's users, whom its
    /// finger daemon is asked about): (login, uid, full name, home). Nothing runs as them.
    pub fn add_users(&self, users: &[(String, u32, String, PathBuf)]) -> Result<()> {
        use std::io::Write;
        let passwd: String = users
            .iter()
            .map(|(l, u, n, h)| format!("{l}:x:{u}:{u}:{n}:{}:/bin/sh\n", h.display()))
            .collect();
        let group: String = users
            .iter()
            .map(|(l, u, _, _)| format!("{l}:x:{u}:\n"))
            .collect();
        for (file, text) in [("passwd", passwd), ("group", group)] {
            let p = self.root.join("etc").join(file);
            std::fs::OpenOptions::new()
                .append(true)
                .open(&p)
                .and_then(|mut f| f.write_all(text.as_bytes()))
                .map_err(|e| Error::io(&e, "write", p.display()).with_code(3))?;
        }
        Ok(())
    }

    /// A staging mount point for the `k`-th exposed directory (see `Plan`).
    pub fn stage(&self, k: usize) -> Result<PathBuf> {
        let d = self.root.join("mnt").join(k.to_string());
        match std::fs::create_dir(&d) {
            // A box reused by several launches (lab 6) stages at the same points.
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                Err(Error::io(&e, "mkdir", d.display()).with_code(3))
            }
            _ => Ok(d),
        }
    }

    /// Entries of a box directory, for the leftover report (host view).
    pub fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for BoxDir {
    fn drop(&mut self) {
        if self.mounted {
            // Lazy: a process we failed to kill cannot keep the box alive for the next owner.
            let _ = nix::mount::umount2(&self.root, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir_all(&self.root);
        } else if let Some(t) = self.temp.take() {
            let _ = t.close();
        }
    }
}

/// Execute-only copies (0111, root) of the reference programs a box must run: a copy cannot be
/// read, and exec of an unreadable file makes the process non-dumpable, so no one of the box can
/// read it through /proc or ptrace either. A cache shared by graders: one directory per build
/// directory (`refs/<hash>`, names kept, since references find each other by name), a copy
/// made again only when its source changed (inode, size, mtime), replaced by rename so that a
/// grader running the old copy keeps it. `ipclab clean` removes the directories of builds gone.
pub struct Refs {
    pub dir: PathBuf,
}

impl Refs {
    /// The cache of the programs built in `src_dir`.
    pub fn new(src_dir: &Path) -> Result<Refs> {
        use std::hash::{Hash, Hasher};
        let top = root_dir(Path::new(CACHE), "refs")?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        src_dir.hash(&mut h);
        let dir = top.join(format!("{:016x}", h.finish()));
        // Made whole under a temporary name, then renamed: a concurrent grader's sweep never
        // sees the entry without its `.source` (it would take it for a build that is gone).
        if !dir.exists() {
            let tmp = top.join(format!(".new-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir(&tmp)
                .map_err(|e| Error::io(&e, "mkdir", tmp.display()).with_code(3))?;
            std::fs::write(tmp.join(".source"), src_dir.as_os_str().as_encoded_bytes())
                .map_err(|e| Error::io(&e, "write", tmp.display()).with_code(3))?;
            if std::fs::rename(&tmp, &dir).is_err() {
                // Another grader made it first.
                let _ = std::fs::remove_dir_all(&tmp);
            }
        }
        let md = std::fs::symlink_metadata(&dir)
            .map_err(|e| Error::io(&e, "lstat", dir.display()).with_code(3))?;
        if !md.is_dir() || std::os::unix::fs::MetadataExt::uid(&md) != 0 {
            return Err(
                Error::runtime(format!("{} is not root's directory", dir.display())).with_code(3),
            );
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))
            .map_err(|e| Error::io(&e, "chmod", dir.display()).with_code(3))?;
        Ok(Refs { dir })
    }

    /// The copy of `src` with `mode` (0111 for programs, 0444 for a preloaded library).
    pub fn add(&self, src: &Path, mode: u32) -> Result<PathBuf> {
        use std::os::unix::fs::MetadataExt;
        let name = src
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let dst = self.dir.join(&name);
        let md = std::fs::metadata(src).map_err(|e| Error::io(&e, "stat", src.display()))?;
        let stamp = format!(
            "{} {} {} {} {mode:o}",
            md.dev(),
            md.ino(),
            md.size(),
            md.mtime_nsec() + md.mtime() * 1_000_000_000
        );
        let stamp_file = self.dir.join(format!(".{name}.stamp"));
        if dst.exists() && std::fs::read_to_string(&stamp_file).is_ok_and(|s| s == stamp) {
            return Ok(dst);
        }
        let tmp = self.dir.join(format!(".{name}.{}", std::process::id()));
        let io =
            |e: std::io::Error, op: &str, p: &Path| Error::io(&e, op, p.display()).with_code(3);
        std::fs::copy(src, &tmp).map_err(|e| io(e, "copy", &tmp))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
            .map_err(|e| io(e, "chmod", &tmp))?;
        std::fs::rename(&tmp, &dst).map_err(|e| io(e, "rename", &dst))?;
        std::fs::write(&stamp_file, stamp).map_err(|e| io(e, "write", &stamp_file))?;
        Ok(dst)
    }
}

/// Cached reference copies whose build directory is gone.
fn sweep_refs(done: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(Path::new(CACHE).join("refs")) else {
        return;
    };
    for e in rd.flatten() {
        // An entry being made (`.new-PID`) is its maker's while the maker runs.
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(".new-") {
            if !pid.parse().is_ok_and(owner_alive) {
                let _ = std::fs::remove_dir_all(e.path());
            }
            continue;
        }
        let src = std::fs::read(e.path().join(".source")).unwrap_or_default();
        let src = PathBuf::from(String::from_utf8_lossy(&src).into_owned());
        if src.as_os_str().is_empty() || !src.is_dir() {
            let _ = std::fs::remove_dir_all(e.path());
            done.push(format!(
                "removed {} (its build is gone)",
                e.path().display()
            ));
        }
    }
}

/// One mount operation the child performs in its new mount namespace, in order.
#[derive(Debug, Clone)]
pub enum MountOp {
    /// Nothing we mount propagates back to the host.
    Private,
    Bind {
        src: CString,
        dst: CString,
        recursive: bool,
    },
    /// A small empty tmpfs over a directory to hide (made read-only by `Seal`).
    Hide {
        dst: CString,
    },
    /// `mkdir -p` (mount points inside a hidden directory or the box's /tmp).
    Mkdirs {
        path: CString,
    },
    Move {
        src: CString,
        dst: CString,
    },
    ReadOnly {
        dst: CString,
        bind: bool,
    },
}

/// Everything the child does between fork and exec, prepared by the parent (no allocation needed
/// in the child beyond what is here; the grader is single-threaded anyway).
pub struct Plan {
    pub stdout: i32,
    pub stderr: i32,
    /// Write end of the gate: (step, errno) on failure, a READY record once namespaces exist.
    pub gate: i32,
    /// Read end of the go pipe: the parent writes once it has attached and placed us.
    pub go: i32,
    pub cwd: CString,
    pub run_as: Option<(u32, u32)>,
    pub netns: bool,
    /// Join this network namespace (a descriptor the grader holds: `NetNs`) instead of making one.
    pub join_netns: Option<i32>,
    pub ipcns: bool,
    /// A normal user's box: new user (identity map), PID, network and IPC namespaces; the
    /// child becomes the namespace's init's parent, a tiny init reaps, main is its child and
    /// sends its pid (as the grader sees it) in the READY record.
    pub user_pid_ns: bool,
    pub mounts: Vec<MountOp>,
    pub cpu_secs: u64,
    pub nproc: Option<u64>,
    pub file_size: u64,
    pub address_space: Option<u64>,
    /// Keep CAP_SETUID, CAP_SETGID and CAP_KILL (ambient, so across exec) after the uid drop: a
    /// reference program that starts and stops the implementation's processes under the box's
    /// other uid.
    pub keep_setuid: bool,
}

/// Steps of the child's setup, as reported on the gate (index = code).
pub const STEPS: &[&str] = &[
    "ready",
    "setsid",
    "open /dev/null",
    "dup2",
    "unshare(CLONE_NEWNET)",
    "unshare(CLONE_NEWIPC)",
    "unshare(CLONE_NEWNS)",
    "mount",
    "unshare(CLONE_NEWUSER|CLONE_NEWPID)",
    "uid_map",
    "fork",
    "setrlimit",
    "chdir",
    "setgroups",
    "setgid",
    "setuid",
    "capabilities",
    "prctl(PR_SET_PDEATHSIG)",
    "read go",
    "close_range",
    "execve",
    "setns(CLONE_NEWNET)",
];

fn step(name: &str) -> u32 {
    STEPS.iter().position(|s| *s == name).unwrap_or(0) as u32
}

/// Reports (step, errno) on the gate and `_exit`s: the parent is reading the gate.
fn fail(gate: i32, name: &str, e: Errno) -> ! {
    let rec = [step(name).to_ne_bytes(), (e as i32).to_ne_bytes()].concat();
    // Safety: write(2) and _exit(2) in the forked child; no unwinding.
    unsafe {
        libc::write(gate, rec.as_ptr().cast(), rec.len());
        libc::_exit(127)
    }
}

fn check(gate: i32, name: &str, r: std::result::Result<(), Errno>) {
    if let Err(e) = r {
        fail(gate, name, e)
    }
}

impl Plan {
    /// In the forked child: the whole setup, then execve. Never returns.
    pub fn apply_and_exec(&self, path: &CString, argv: &[CString], env: &[CString]) -> ! {
        use nix::sys::resource::{setrlimit, Resource};
        let g = self.gate;
        // The grader is not dumpable and fork passed that on: a non-root grader could not
        // ptrace its own child. exec sets it again from the program file anyway.
        // Safety: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
        check(g, "setsid", nix::unistd::setsid().map(|_| ()));
        // Safety: descriptor juggling on this child's own table.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if null < 0 || libc::dup2(null, 0) < 0 {
                fail(g, "open /dev/null", Errno::last());
            }
            if libc::dup2(self.stdout, 1) < 0 || libc::dup2(self.stderr, 2) < 0 {
                fail(g, "dup2", Errno::last());
            }
        }
        use nix::sched::{unshare, CloneFlags};
        if let Some(fd) = self.join_netns {
            // Safety: setns on a descriptor the parent opened for us.
            if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                fail(g, "setns(CLONE_NEWNET)", Errno::last());
            }
        }
        if self.user_pid_ns {
            self.enter_user_pid_ns();
        }
        // One unshare for every namespace the box has: the network's loopback comes up after.
        let mut flags = CloneFlags::empty();
        if self.netns {
            flags |= CloneFlags::CLONE_NEWNET;
        }
        if self.ipcns {
            flags |= CloneFlags::CLONE_NEWIPC;
        }
        if !self.mounts.is_empty() {
            flags |= CloneFlags::CLONE_NEWNS;
        }
        if !flags.is_empty() {
            let name = if flags.contains(CloneFlags::CLONE_NEWNET) {
                "unshare(CLONE_NEWNET)"
            } else if flags.contains(CloneFlags::CLONE_NEWIPC) {
                "unshare(CLONE_NEWIPC)"
            } else {
                "unshare(CLONE_NEWNS)"
            };
            check(g, name, unshare(flags));
        }
        if self.netns {
            loopback_up();
        }
        if !self.mounts.is_empty() {
            for op in &self.mounts {
                check(g, "mount", mount_op(op));
            }
        }
        // READY carries our pid as the grader sees it when we are in a PID namespace of ours:
        // /proc is still the host's, so /proc/self names the outer pid.
        let me: i32 = if self.user_pid_ns {
            std::fs::read_link("/proc/self")
                .ok()
                .and_then(|p| p.to_str()?.parse().ok())
                .unwrap_or(0)
        } else {
            0
        };
        let ready = [step("ready").to_ne_bytes(), me.to_ne_bytes()].concat();
        // Safety: write(2) of our record on the gate.
        unsafe { libc::write(g, ready.as_ptr().cast(), ready.len()) };
        let lim = |r, v: u64| setrlimit(r, v, v);
        check(
            g,
            "setrlimit",
            setrlimit(Resource::RLIMIT_CPU, self.cpu_secs, self.cpu_secs + 1),
        );
        check(g, "setrlimit", lim(Resource::RLIMIT_CORE, 0));
        check(g, "setrlimit", lim(Resource::RLIMIT_FSIZE, self.file_size));
        if let Some(n) = self.nproc {
            check(g, "setrlimit", lim(Resource::RLIMIT_NPROC, n));
        }
        if let Some(a) = self.address_space {
            check(g, "setrlimit", lim(Resource::RLIMIT_AS, a));
        }
        // Safety: chdir to a NUL-terminated path we own.
        if unsafe { libc::chdir(self.cwd.as_ptr()) } != 0 {
            fail(g, "chdir", Errno::last());
        }
        if let Some((uid, gid)) = self.run_as {
            check(g, "setgroups", nix::unistd::setgroups(&[]));
            check(g, "setgid", nix::unistd::setgid(gid.into()));
            if self.keep_setuid {
                // Safety: prctl with integer arguments.
                if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
                    fail(g, "capabilities", Errno::last());
                }
            }
            check(g, "setuid", nix::unistd::setuid(uid.into()));
            if self.keep_setuid {
                check(g, "capabilities", keep_only_setuid());
            }
        }
        // After the uid change, which clears it: the box's first process dies with the grader.
        // Safety: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
            fail(g, "prctl(PR_SET_PDEATHSIG)", Errno::last());
        }
        let mut b = [0u8; 1];
        // Safety: read(2) into our buffer.
        if unsafe { libc::read(self.go, b.as_mut_ptr().cast(), 1) } != 1 {
            fail(g, "read go", Errno::last());
        }
        // Nothing the grader holds passes on: every descriptor above 2 closes at exec (the gate
        // included, which is how the grader learns that exec succeeded).
        // Safety: close_range(2) with CLOSE_RANGE_CLOEXEC on our own table.
        if unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        } != 0
        {
            fail(g, "close_range", Errno::last());
        }
        let e = match nix::unistd::execve(path, argv, env) {
            Err(e) => e,
            Ok(never) => match never {},
        };
        fail(g, "execve", e)
    }
}

impl Plan {
    /// New user, PID, network and IPC namespaces for a normal user, then two forks: the
    /// namespace's init (pid 1 inside: reaps whatever is orphaned there, and its death kills
    /// the whole namespace) and main, which returns to finish the setup. The process the
    /// grader forked stays outside, waits for that init and dies with the grader; both carry
    /// a parent-death signal, so the grader's death kills the namespace.
    fn enter_user_pid_ns(&self) {
        use nix::sched::{unshare, CloneFlags};
        let g = self.gate;
        let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
        check(
            g,
            "unshare(CLONE_NEWUSER|CLONE_NEWPID)",
            unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWPID),
        );
        let map = |file: &str, text: String| {
            let r = std::fs::write(file, text)
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EPERM)));
            check(g, "uid_map", r);
        };
        map("/proc/self/setgroups", "deny".into());
        map("/proc/self/uid_map", format!("{uid} {uid} 1"));
        map("/proc/self/gid_map", format!("{gid} {gid} 1"));
        // Safety: pdeathsig, fork, waitpid, close and _exit in a single-threaded child.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            match libc::fork() {
                -1 => fail(g, "fork", Errno::last()),
                0 => {}
                init => {
                    quiet_descriptors(&[g, self.go]);
                    let mut st = 0;
                    while libc::waitpid(init, &mut st, 0) < 0 && Errno::last() == Errno::EINTR {}
                    libc::_exit(0)
                }
            }
            // pid 1 of the new namespace.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            match libc::fork() {
                -1 => fail(g, "fork", Errno::last()),
                0 => {}
                _main => {
                    quiet_descriptors(&[g, self.go]);
                    loop {
                        let mut st = 0;
                        if libc::waitpid(-1, &mut st, 0) < 0 && Errno::last() == Errno::ECHILD {
                            libc::_exit(0)
                        }
                    }
                }
            }
            // main: its parent is that init; it dies with it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        }
    }
}

/// After a uid drop with PR_SET_KEEPCAPS: CAP_SETUID, CAP_SETGID (to start the implementation's
/// processes under the box's other uid) and CAP_KILL (to stop them: they are not its uid) only,
/// in every set and ambient, so that the program exec'd next holds them and nothing else.
fn keep_only_setuid() -> std::result::Result<(), Errno> {
    use caps::{CapSet, Capability};
    const KEPT: [Capability; 3] = [
        Capability::CAP_SETUID,
        Capability::CAP_SETGID,
        Capability::CAP_KILL,
    ];
    let two: caps::CapsHashSet = KEPT.into_iter().collect();
    let errno = |_| Errno::EPERM;
    for set in [CapSet::Effective, CapSet::Permitted, CapSet::Inheritable] {
        caps::set(None, set, &two).map_err(errno)?;
    }
    for c in KEPT {
        caps::raise(None, CapSet::Ambient, c).map_err(errno)?;
    }
    Ok(())
}

/// In a reference program that holds CAP_SETUID/CAP_SETGID (see `Plan::keep_setuid`), in a
/// forked child before exec: become `uid` (gid the same, no groups) and drop every capability,
/// ambient included, so the implementation's process gets none.
pub fn become_uid(uid: u32) -> std::result::Result<(), (&'static str, Errno)> {
    use caps::CapSet;
    nix::unistd::setgroups(&[]).map_err(|e| ("setgroups", e))?;
    nix::unistd::setgid(uid.into()).map_err(|e| ("setgid", e))?;
    nix::unistd::setuid(uid.into()).map_err(|e| ("setuid", e))?;
    for set in [
        CapSet::Ambient,
        CapSet::Effective,
        CapSet::Permitted,
        CapSet::Inheritable,
    ] {
        caps::clear(None, set).map_err(|_| ("capset", Errno::EPERM))?;
    }
    Ok(())
}

/// The namespace's helpers keep nothing of the run open: the gate and go pipe closed (so exec
/// of main alone closes the gate), the standard descriptors on /dev/null (so main's output
/// pipes reach end of file when main's tree closes them).
///
/// Safety: only close/open/dup2 on our own table.
unsafe fn quiet_descriptors(fds: &[i32]) {
    for fd in fds {
        libc::close(*fd);
    }
    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
    if null >= 0 {
        libc::dup2(null, 0);
        libc::dup2(null, 1);
        libc::dup2(null, 2);
        if null > 2 {
            libc::close(null);
        }
    }
}

fn mount_op(op: &MountOp) -> std::result::Result<(), Errno> {
    use nix::mount::{mount, MsFlags};
    let none: Option<&str> = None;
    match op {
        MountOp::Private => mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none),
        MountOp::Bind {
            src,
            dst,
            recursive,
        } => {
            let mut f = MsFlags::MS_BIND;
            if *recursive {
                f |= MsFlags::MS_REC;
            }
            mount(Some(src.as_c_str()), dst.as_c_str(), none, f, none)
        }
        MountOp::Hide { dst } => mount(
            Some("ipclab-hidden"),
            dst.as_c_str(),
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("size=64k,nr_inodes=256,mode=0755"),
        ),
        MountOp::Mkdirs { path } => {
            let bytes = path.as_bytes();
            for (i, _) in bytes
                .iter()
                .enumerate()
                .filter(|(i, b)| **b == b'/' && *i > 0)
            {
                mkdir_one(&bytes[..i])?;
            }
            mkdir_one(bytes)
        }
        MountOp::Move { src, dst } => mount(
            Some(src.as_c_str()),
            dst.as_c_str(),
            none,
            MsFlags::MS_MOVE,
            none,
        ),
        MountOp::ReadOnly { dst, bind } => {
            let mut f = MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID;
            if *bind {
                f |= MsFlags::MS_BIND;
            } else {
                f |= MsFlags::MS_NODEV;
            }
            mount(none, dst.as_c_str(), none, f, none)
        }
    }
}

fn mkdir_one(p: &[u8]) -> std::result::Result<(), Errno> {
    let c = CString::new(p).map_err(|_| Errno::EINVAL)?;
    // Safety: mkdir(2) on a NUL-terminated path.
    if unsafe { libc::mkdir(c.as_ptr(), 0o755) } == 0 {
        return Ok(());
    }
    match Errno::last() {
        Errno::EEXIST => Ok(()),
        e => Err(e),
    }
}

/// `ip link set lo up` in a fresh network namespace (SIOCSIFFLAGS).
fn loopback_up() {
    // Safety: a datagram socket and an ifreq we own; errors leave lo down, which only matters
    // to programs that use the network.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return;
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req) == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            libc::ioctl(s, libc::SIOCSIFFLAGS, &req);
        }
        libc::close(s);
    }
}

/// System V objects in the IPC namespace of `ns` (an fd of /proc/PID/ns/ipc): entered for the
/// read, then left for our own. Lines "shm KEY ID", "msg ...", "sem ...".
pub fn sysv_objects(ns: &std::os::fd::OwnedFd) -> Vec<String> {
    use nix::sched::{setns, CloneFlags};
    let Ok(own) = File::open("/proc/self/ns/ipc") else {
        return Vec::new();
    };
    if setns(ns, CloneFlags::CLONE_NEWIPC).is_err() {
        return Vec::new();
    }
    let mut v = Vec::new();
    for kind in ["shm", "msg", "sem"] {
        let text = std::fs::read_to_string(format!("/proc/sysvipc/{kind}")).unwrap_or_default();
        for l in text.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() >= 2 {
                v.push(format!("SysV {kind} key {} id {}", f[0], f[1]));
            }
        }
    }
    let _ = setns(&own, CloneFlags::CLONE_NEWIPC);
    v
}

/// The fixed environment of a box: PATH, HOME, LANG, USER/LOGNAME, then the caller's extras.
pub fn environment(home: &Path, user: &str, extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "PATH".to_string(),
            "/usr/local/bin:/usr/bin:/bin".to_string(),
        ),
        ("HOME".to_string(), home.display().to_string()),
        ("LANG".to_string(), "C.UTF-8".to_string()),
        ("USER".to_string(), user.to_string()),
        ("LOGNAME".to_string(), user.to_string()),
    ];
    env.extend(extra.iter().cloned());
    env
}

/// IPCLAB_DEBUG=time: milliseconds since the first mark, per phase (what `make bench-grade`
/// does not break down).
pub fn mark(what: &str) {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let t0 = *START.get_or_init(std::time::Instant::now);
    if std::env::var_os("IPCLAB_DEBUG").is_some_and(|v| v == "time") {
        eprintln!("[time] {:8.2} ms {what}", t0.elapsed().as_secs_f64() * 1e3);
    }
}

/// A network namespace of our own, held by a descriptor (no name in /run/netns: it dies with
/// its last holder, also when we are killed): a run of several launches shares it (lab 8: the
/// grader binds a port in it before the program starts), and the grader's own sockets for the
/// run are made in it. Root only (unshare(CLONE_NEWNET) needs CAP_SYS_ADMIN).
pub struct NetNs {
    fd: OwnedFd,
}

impl NetNs {
    /// A fresh namespace with its loopback up. A helper thread unshares (the network namespace
    /// is per thread), so the caller's own stays as it was.
    pub fn new() -> Result<NetNs> {
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::sys(e, "unshare", "CLONE_NEWNET"))?;
                loopback_up();
                let f = File::open("/proc/thread-self/ns/net")
                    .map_err(|e| Error::io(&e, "open", "/proc/thread-self/ns/net"))?;
                Ok(NetNs { fd: f.into() })
            })
            .join()
            .unwrap_or_else(|_| Err(Error::runtime("the namespace thread panicked")))
        })
    }

    pub fn raw_fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.fd.as_raw_fd()
    }

    /// Runs `f` on a thread inside the namespace: what it creates (sockets) stays in it, and can
    /// be used from any thread afterwards.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(&self.fd, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::sys(e, "setns", "CLONE_NEWNET"))?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| Err(Error::runtime("a namespace thread panicked")))
        })
    }
}
