//! Process inspection through /proc (procfs): parent, state, session, terminal, children.
//!
//! This is what `ps -o pid,ppid,stat,comm` reads; the labs use it to prove a run left nothing
//! behind, scoped to one process tree (the machine may hold zombies that are not ours).

use nix::unistd::Pid;

/// One row of `ps`: what /proc/PID/stat says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: i32,
    pub ppid: i32,
    /// R running, S sleeping, D disk wait, T stopped, Z zombie, ...
    pub state: char,
    pub comm: String,
    pub pgrp: i32,
    pub session: i32,
    /// 0 when the process has no controlling terminal.
    pub tty_nr: i32,
}

impl ProcInfo {
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }

    /// `ps` style: zombies print as `<defunct>`.
    pub fn row(&self) -> String {
        let comm = if self.is_zombie() {
            format!("{} <defunct>", self.comm)
        } else {
            self.comm.clone()
        };
        format!(
            "{:>7} {:>7} {:<4} {}",
            self.pid, self.ppid, self.state, comm
        )
    }
}

pub const HEADER: &str = "    PID    PPID STAT COMMAND";

/// The process, or None once it is gone (reaped) or unreadable.
pub fn info(pid: i32) -> Option<ProcInfo> {
    let stat = procfs::process::Process::new(pid).ok()?.stat().ok()?;
    Some(ProcInfo {
        pid: stat.pid,
        ppid: stat.ppid,
        state: stat.state,
        comm: stat.comm,
        pgrp: stat.pgrp,
        session: stat.session,
        tty_nr: stat.tty_nr,
    })
}

/// Every process that still has a /proc entry (zombies included).
pub fn all() -> Vec<ProcInfo> {
    let Ok(iter) = procfs::process::all_processes() else {
        return Vec::new();
    };
    iter.filter_map(|p| p.ok())
        .filter_map(|p| info(p.pid()))
        .collect()
}

pub fn children(pid: i32) -> Vec<ProcInfo> {
    all().into_iter().filter(|p| p.ppid == pid).collect()
}

/// Children, grandchildren... of `pid` (not `pid` itself), from one snapshot of /proc.
pub fn descendants(pid: i32) -> Vec<ProcInfo> {
    let snapshot = all();
    let mut out: Vec<ProcInfo> = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for p in snapshot.iter().filter(|p| p.ppid == parent) {
            frontier.push(p.pid);
            out.push(p.clone());
        }
    }
    out
}

pub fn is_alive(pid: Pid) -> bool {
    info(pid.as_raw()).is_some_and(|p| !p.is_zombie())
}

/// Entries of /dev/shm whose names start with `prefix` (without the leading slash).
pub fn shm_objects(prefix: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/dev/shm") else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our own entry: alive, our parent, not a zombie.
    #[test]
    fn reads_own_stat() {
        let me = info(std::process::id() as i32).unwrap();
        assert_eq!(me.ppid, nix::unistd::getppid().as_raw());
        assert!(!me.is_zombie());
        assert!(me.row().contains(&me.pid.to_string()));
    }
}
