//! A pids cgroup around one graded run: a process bound that binds root too, and a membership
//! list that no double fork or setsid escapes. cgroup v1 (`/sys/fs/cgroup/pids`) or v2.

use std::fs;
use std::path::{Path, PathBuf};

pub struct PidsCgroup {
    dir: PathBuf,
    pub version: u8,
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
        let cg = PidsCgroup { dir, version };
        fs::write(cg.dir.join("pids.max"), max.to_string())
            .map_err(|e| format!("cannot write {}/pids.max: {e}", cg.dir.display()))?;
        Ok(cg)
    }

    /// Moves `pid` in; its future children are born inside.
    pub fn add(&self, pid: i32) -> Result<(), String> {
        fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .map_err(|e| format!("cannot join {}: {e}", self.dir.display()))
    }

    /// Moves `pid` back to the parent cgroup (a daemon that must outlive this run).
    pub fn release(&self, pid: i32) {
        if let Some(parent) = self.dir.parent() {
            let _ = fs::write(parent.join("cgroup.procs"), pid.to_string());
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
        format!("pids cgroup v{} ({})", self.version, self.dir.display())
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        // rmdir succeeds once the cgroup is empty; the harness has reaped everything by now.
        let _ = fs::remove_dir(&self.dir);
    }
}
