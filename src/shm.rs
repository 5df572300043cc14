//! POSIX shared memory (`shm_open`, `ftruncate`, `mmap`, `shm_unlink`).
//!
//! A segment is a file in /dev/shm named by the caller; `mmap` makes the same physical pages
//! appear in every process that maps it. Only the creator unlinks it.

use crate::error::{Error, Result};
use memmap2::{MmapMut, MmapOptions};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::os::fd::OwnedFd;

/// Name for a name-only object: `/PREFIX-<uid>-<pid>-<random>`, so leak checks can match
/// `PREFIX*` and two runs never collide.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "/{prefix}-{}-{}-{:08x}",
        nix::unistd::getuid(),
        std::process::id(),
        rand::random::<u32>()
    )
}

/// This user's objects named by `unique_name` with a prefix starting with `family`
/// (`ipclab`, `ipclab-data`, `ipclab-zoo`...): (name, creator pid), sorted.
pub fn ours(family: &str) -> Vec<(String, i32)> {
    use std::os::unix::fs::MetadataExt;
    let uid = nix::unistd::getuid().as_raw();
    let mut v = Vec::new();
    for name in crate::inspect::shm_objects(family) {
        let mut parts = name.rsplitn(4, '-');
        let (_hex, pid, u) = (parts.next(), parts.next(), parts.next());
        let (Some(pid), Some(u)) = (pid.and_then(|p| p.parse().ok()), u) else {
            continue;
        };
        let owned = std::fs::metadata(format!("/dev/shm/{name}")).is_ok_and(|m| m.uid() == uid);
        if u == uid.to_string() && owned {
            v.push((name, pid));
        }
    }
    v
}

/// Unlinks this user's objects of `family` (see `ours`) whose creator no longer runs (what a
/// killed program left), except `keep`; with `mine`, also those this process made (it is
/// stopping). Returns (path, creator, outcome) for each.
pub fn remove_orphaned(
    family: &str,
    keep: &[String],
    mine: bool,
) -> Vec<(String, i32, Result<()>)> {
    let me = std::process::id() as i32;
    let mut done = Vec::new();
    for (name, pid) in ours(family) {
        let gone = (mine && pid == me) || crate::inspect::info(pid).is_none();
        if keep.contains(&name) || !gone {
            continue;
        }
        let path = format!("/dev/shm/{name}");
        let r = nix::sys::mman::shm_unlink(format!("/{name}").as_str())
            .map_err(|e| Error::sys(e, "shm_unlink", &path));
        done.push((path, pid, r));
    }
    done
}

/// Checks a user-given prefix: shm names are one path component.
pub fn check_prefix(prefix: &str) -> Result<()> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 200
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !prefix.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "bad --name-prefix {prefix:?}: use letters, digits, '-', '_' or '.'"
        )))
    }
}

/// A mapped segment. The creator owns the name and unlinks it on drop.
pub struct Segment {
    name: String,
    map: MmapMut,
    /// Kept open so a survivor can tell whether the name still refers to this very object.
    fd: OwnedFd,
    owner: bool,
}

impl Segment {
    /// `shm_open(name, O_CREAT|O_EXCL|O_RDWR, 0600)`, `ftruncate(len)`, `mmap(MAP_SHARED)`.
    /// On failure after the create, the name is unlinked again.
    pub fn create(name: &str, len: usize) -> Result<Segment> {
        let fd = nix::sys::mman::shm_open(
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )
        .map_err(|e| Error::sys(e, "shm_open", name))?;
        let unlink_on_err = |e: Error| {
            let _ = nix::sys::mman::shm_unlink(name);
            e
        };
        nix::unistd::ftruncate(&fd, len as libc::off_t)
            .map_err(|e| unlink_on_err(Error::sys(e, "ftruncate", name)))?;
        let map = map(&fd, len, name).map_err(unlink_on_err)?;
        Ok(Segment {
            name: name.to_string(),
            map,
            fd,
            owner: true,
        })
    }

    /// `shm_open(name, O_RDWR)` of an existing segment, mapped whole; does not own the name.
    pub fn open(name: &str) -> Result<Segment> {
        let fd = nix::sys::mman::shm_open(name, OFlag::O_RDWR, Mode::empty())
            .map_err(|e| Error::sys(e, "shm_open", name))?;
        let st = nix::sys::stat::fstat(&fd).map_err(|e| Error::sys(e, "fstat", name))?;
        let map = map(&fd, st.st_size as usize, name)?;
        Ok(Segment {
            name: name.to_string(),
            map,
            fd,
            owner: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Base of the mapping; page-aligned. Other processes write here concurrently, so access
    /// it only through atomics or under the lab's synchronisation.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_ptr() as *mut u8
    }

    /// The mapping as 64-bit atomic words: how processes share counters without a lock.
    pub fn words(&self) -> &[std::sync::atomic::AtomicU64] {
        // Safety: the mapping is page-aligned and lives as long as self; AtomicU64 permits
        // concurrent access from other processes.
        unsafe {
            std::slice::from_raw_parts(
                self.as_ptr().cast::<std::sync::atomic::AtomicU64>(),
                self.len() / 8,
            )
        }
    }

    /// `shm_unlink` now, reporting failure; the mapping stays valid until drop.
    pub fn unlink(&mut self) -> Result<()> {
        if !self.owner {
            return Ok(());
        }
        self.owner = false;
        nix::sys::mman::shm_unlink(self.name.as_str())
            .map_err(|e| Error::sys(e, "shm_unlink", &self.name))
    }
}

impl Segment {
    /// For a survivor whose creator died: unlinks the name only if it still names this segment
    /// (same inode), so a newer object of the same name is never removed.
    pub fn unlink_if_same(&mut self) -> Result<bool> {
        let ours =
            nix::sys::stat::fstat(&self.fd).map_err(|e| Error::sys(e, "fstat", &self.name))?;
        let Ok(now) = nix::sys::stat::stat(format!("/dev/shm{}", self.name).as_str()) else {
            return Ok(false);
        };
        if now.st_ino != ours.st_ino || now.st_dev != ours.st_dev {
            return Ok(false);
        }
        self.owner = true;
        self.unlink().map(|_| true)
    }
}

/// A POSIX unnamed semaphore living inside a shared mapping (`sem_init(pshared = 1)`), usable by
/// every process that maps it. glibc builds it on a futex word: `sem_wait` only enters the kernel
/// (futex FUTEX_WAIT) when the count is 0, and a post made before the wait is never lost.
pub struct SharedSem(*mut libc::sem_t);

impl SharedSem {
    /// `sem_init(ptr, 1, value)`.
    ///
    /// # Safety
    /// `ptr` points into a live shared mapping, suitably aligned, not yet an initialised semaphore
    /// that another process is using.
    pub unsafe fn init(ptr: *mut libc::sem_t, value: u32) -> Result<SharedSem> {
        if libc::sem_init(ptr, 1, value) != 0 {
            return Err(Error::sys(nix::errno::Errno::last(), "sem_init", ""));
        }
        Ok(SharedSem(ptr))
    }

    /// A semaphore another process initialised.
    ///
    /// # Safety
    /// `ptr` points at a semaphore initialised with `init` in a mapping that outlives this value.
    pub unsafe fn at(ptr: *mut libc::sem_t) -> SharedSem {
        SharedSem(ptr)
    }

    pub fn post(&self) -> Result<()> {
        // Safety: self.0 is an initialised semaphore (constructor contract).
        if unsafe { libc::sem_post(self.0) } != 0 {
            return Err(Error::sys(nix::errno::Errno::last(), "sem_post", ""));
        }
        Ok(())
    }

    /// `sem_timedwait`: true once decremented, false when `timeout` passed. EINTR is retried.
    pub fn wait_timeout(&self, timeout: std::time::Duration) -> Result<bool> {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // Safety: clock_gettime writes into the timespec we own.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
        let nanos = now.tv_nsec as u64 + timeout.subsec_nanos() as u64;
        let deadline = libc::timespec {
            tv_sec: now.tv_sec
                + timeout.as_secs() as libc::time_t
                + (nanos / 1_000_000_000) as libc::time_t,
            tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
        };
        loop {
            // Safety: initialised semaphore; deadline is a valid timespec.
            if unsafe { libc::sem_timedwait(self.0, &deadline) } == 0 {
                return Ok(true);
            }
            match nix::errno::Errno::last() {
                nix::errno::Errno::EINTR => continue,
                nix::errno::Errno::ETIMEDOUT => return Ok(false),
                e => return Err(Error::sys(e, "sem_timedwait", "")),
            }
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        let _ = self.unlink();
    }
}

fn map(fd: &OwnedFd, len: usize, name: &str) -> Result<MmapMut> {
    // Safety: the segment is shared by design; callers go through atomics or semaphores, never
    // through `&mut [u8]` views that another process could change underneath.
    unsafe { MmapOptions::new().len(len).map_mut(fd) }.map_err(|e| Error::io(&e, "mmap", name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// O_EXCL: a second create of the same name fails with EEXIST; drop unlinks.
    #[test]
    fn create_is_exclusive_and_drop_unlinks() {
        let name = unique_name("ipclab-test");
        let seg = Segment::create(&name, 8192).unwrap();
        assert_eq!(seg.len(), 8192);
        let path = format!("/dev/shm{name}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let err = Segment::create(&name, 8192).err().unwrap();
        assert!(err.to_string().contains("EEXIST"), "{err}");
        let other = Segment::open(&name).unwrap();
        // Safety: both mappings are of this process; no concurrent writer.
        unsafe {
            *seg.as_ptr().add(100) = 42;
            assert_eq!(*other.as_ptr().add(100), 42);
        }
        drop(other);
        assert!(
            std::path::Path::new(&path).exists(),
            "non-owner must not unlink"
        );
        drop(seg);
        assert!(!std::path::Path::new(&path).exists());
    }

    #[test]
    fn prefix_must_be_one_component() {
        assert!(check_prefix("ipclab-g1").is_ok());
        for bad in ["", "a/b", "..", "x y"] {
            assert_eq!(check_prefix(bad).unwrap_err().code(), 2);
        }
    }
}
