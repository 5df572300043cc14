//! Object watching: inotify on the contract's DIR (or /dev/shm), and who holds what is there.

use super::*;

/// One run's inotify watch on the contract's directory, in an inotify instance kept for the
/// grader's life: closing an instance waits for an SRCU grace period (its marks' teardown),
/// ~15 ms here per run; removing a watch does not wait.
pub(super) struct Watch {
    ino: &'static Inotify,
    wd: nix::sys::inotify::WatchDescriptor,
}

pub(super) static WATCHER: std::sync::OnceLock<Inotify> = std::sync::OnceLock::new();

impl Watch {
    pub(super) fn new(d: &Path) -> Result<Watch, String> {
        let ino = match WATCHER.get() {
            Some(i) => i,
            None => {
                let i = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
                    .map_err(|e| format!("inotify_init: {e}"))?;
                WATCHER.get_or_init(|| i)
            }
        };
        // What an earlier run's watch left unread (its IN_IGNORED) is not this run's.
        while matches!(ino.read_events(), Ok(v) if !v.is_empty()) {}
        let mask = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_OPEN
            | AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_CLOSE_NOWRITE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_FROM
            // Not recorded: its only use is to sit between two opens so that inotify does
            // not merge them into one (identical unread events are coalesced).
            | AddWatchFlags::IN_MODIFY;
        let wd = ino
            .add_watch(d, mask)
            .map_err(|e| format!("inotify_add_watch {}: {e}", d.display()))?;
        Ok(Watch { ino, wd })
    }
}

impl AsFd for Watch {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.ino.as_fd()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.ino.rm_watch(self.wd);
    }
}

pub(super) fn read_dir_events(
    ino: &Watch,
    dir: Option<&Path>,
    prefix: &str,
    events: &mut Vec<DirEvent>,
) -> bool {
    let mut opened = false;
    while let Ok(evs) = ino.ino.read_events() {
        if evs.is_empty() {
            break;
        }
        for ev in evs.into_iter().filter(|e| e.wd == ino.wd) {
            let Some(name) = ev.name.as_ref().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            if !name.starts_with(prefix) {
                continue;
            }
            let m = ev.mask;
            if m.contains(AddWatchFlags::IN_CREATE) {
                let fifo = dir
                    .and_then(|d| std::fs::symlink_metadata(d.join(&name)).ok())
                    .map(|md| {
                        use std::os::unix::fs::FileTypeExt;
                        md.file_type().is_fifo()
                    });
                events.push(DirEvent::Created {
                    name: name.clone(),
                    fifo,
                });
            }
            if m.contains(AddWatchFlags::IN_OPEN) {
                opened = true;
                events.push(DirEvent::Opened { name: name.clone() });
            }
            if m.contains(AddWatchFlags::IN_CLOSE_WRITE) {
                events.push(DirEvent::ClosedWrite { name: name.clone() });
            }
            if m.contains(AddWatchFlags::IN_CLOSE_NOWRITE) {
                events.push(DirEvent::ClosedNoWrite { name: name.clone() });
            }
            if m.intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM) {
                events.push(DirEvent::Deleted { name });
            }
        }
    }
    opened
}

/// Which tree processes hold files of the watched directory right now: open descriptors, or
/// mappings (a shared-memory segment stays mapped after its descriptor is closed).
/// `prefix` is `DIR/NAMEPREFIX`; names are recorded relative to DIR.
pub(super) fn sample_holders(procs: &mut BTreeMap<i32, Proc>, prefix: Option<&str>) {
    let Some(prefix) = prefix else { return };
    let dir = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or(prefix);
    for p in procs.values_mut().filter(|p| p.exited.is_none() && !p.gone) {
        let mut hold = |t: &str| {
            if t.starts_with(prefix) {
                if let Some(rest) = t.strip_prefix(dir) {
                    p.held.insert(
                        rest.trim_start_matches('/')
                            .trim_end_matches(" (deleted)")
                            .to_string(),
                    );
                }
            }
        };
        if let Ok(rd) = std::fs::read_dir(format!("/proc/{}/fd", p.pid)) {
            for e in rd.filter_map(|e| e.ok()) {
                if let Ok(target) = std::fs::read_link(e.path()) {
                    hold(&target.display().to_string());
                }
            }
        }
        if let Ok(maps) = std::fs::read_to_string(format!("/proc/{}/maps", p.pid)) {
            for line in maps.lines() {
                if let Some(i) = line.find('/') {
                    hold(&line[i..]);
                }
            }
        }
    }
}
