//! A pids cgroup around one graded run: a process bound that binds root too, and a membership
//! list that no double fork or setsid escapes. cgroup v1 (`/sys/fs/cgroup/pids`) or v2.

use std::fs;
use std::path::{Path, PathBuf};

pub struct PidsCgroup {
    dir: PathBuf,
    pub version: u8,
    /// v1: a freezer cgroup of the same name, so the box can be frozen before it is killed.
    freezer: Option<PathBuf>,
}

impl PidsCgroup {
    /// Creates `ipclab-grade-<pid>-<n>` with `pids.max = max`, or says why it cannot.
    pub fn create(max: u64, n: u32) -> Result<PidsCgroup, String> {
        let name = format!("ipclab-grade-{}-{n}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/pids");
        let (base, version) = if v1.join("cgroup.procs").exists() {
            (v1.to_path_buf(), 1)
        } else if fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .is_ok_and(|c| c.contains("pids"))
        {
            let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
            let rel = own
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .unwrap_or("/")
                .trim()
                .to_string();
            (
                Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/')),
                2,
            )
        } else {
            return Err("no pids cgroup controller mounted".into());
        };
        let dir = base.join(name);
        fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let freezer = (version == 1)
            .then(|| Path::new("/sys/fs/cgroup/freezer").join(dir.file_name().unwrap_or_default()))
            .filter(|f| f.parent().is_some_and(|p| p.join("cgroup.procs").exists()))
            .filter(|f| fs::create_dir(f).is_ok());
        let cg = PidsCgroup {
            dir,
            version,
            freezer,
        };
        fs::write(cg.dir.join("pids.max"), max.to_string())
            .map_err(|e| format!("cannot write {}/pids.max: {e}", cg.dir.display()))?;
        Ok(cg)
    }

    /// Moves `pid` in; its future children are born inside.
    pub fn add(&self, pid: i32) -> Result<(), String> {
        fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .map_err(|e| format!("cannot join {}: {e}", self.dir.display()))?;
        if let Some(f) = &self.freezer {
            fs::write(f.join("cgroup.procs"), pid.to_string())
                .map_err(|e| format!("cannot join {}: {e}", f.display()))?;
        }
        Ok(())
    }

    /// Kills every member at once, whatever left the ptrace tree (CLONE_UNTRACED, setsid).
    pub fn kill(&self) {
        crate::sandbox::kill_cgroup(self.freezer.as_deref().unwrap_or(&self.dir));
    }

    /// Moves `pid` back to the parent cgroup (a daemon that must outlive this run).
    pub fn release(&self, pid: i32) {
        for d in std::iter::once(&self.dir).chain(self.freezer.as_ref()) {
            if let Some(parent) = d.parent() {
                let _ = fs::write(parent.join("cgroup.procs"), pid.to_string());
            }
        }
    }

    pub fn members(&self) -> Vec<i32> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Number of times a fork was refused because pids.max was reached.
    pub fn refused_forks(&self) -> u64 {
        let events = fs::read_to_string(self.dir.join("pids.events")).unwrap_or_default();
        events
            .lines()
            .find_map(|l| l.strip_prefix("max ")?.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn describe(&self) -> String {
        let kill = match (self.version, &self.freezer) {
            (2, _) => "cgroup.kill".to_string(),
            (_, Some(_)) => tf!("freezer, then SIGKILL", "freezer, puis SIGKILL"),
            _ => tf!("SIGKILL to each member", "SIGKILL à chaque membre"),
        };
        tf!(
            "pids cgroup v{} {}, killed by {kill}",
            "cgroup pids v{} {}, tué par {kill}",
            self.version,
            self.dir.display()
        )
    }
}

/// Removes an empty cgroup. rmdir is EBUSY while a member is still listed: a killed orphan
/// that left our tree stays listed, a zombie, until its new parent (PID 1 here, which reaps
/// late) reaps it, and cgroup v1 says nothing when that happens. So EBUSY is retried, 5 s at
/// most; whatever still stands then is for the next grader's sweep.
fn remove_when_empty(dir: &Path) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while let Err(e) = fs::remove_dir(dir) {
        if e.raw_os_error() != Some(libc::EBUSY) || std::time::Instant::now() > end {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        // The harness has reaped everything of its own by now.
        remove_when_empty(&self.dir);
        if let Some(f) = &self.freezer {
            remove_when_empty(f);
        }
    }
}
