//! Named pipes (`mkfifo`, `open`, `unlink`): a ping/pong pair in a private directory.
//!
//! Open order: both sides open `ping` first, then `pong`. Opening a FIFO blocks until the other end
//! is opened too, so if main opened `ping` while the secondary opened `pong` first, each would wait
//! for the other forever (the classic open() deadlock).

use crate::error::{Error, Result};
use nix::errno::Errno;
use nix::sys::stat::Mode;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Two FIFOs this process created; removed on drop, and only those it created.
#[derive(Debug)]
pub struct FifoPair {
    ping: PathBuf,
    pong: PathBuf,
    /// Unlinked already (by `remove`), so drop must not touch the paths again.
    removed: bool,
}

impl FifoPair {
    /// `mkfifo DIR/ping` and `DIR/pong`, mode 0600. An existing path is an error (EEXIST),
    /// never overwritten; if the second mkfifo fails the first FIFO is removed again.
    pub fn create(dir: &Path, ping: &str, pong: &str) -> Result<FifoPair> {
        let ping = dir.join(ping);
        let pong = dir.join(pong);
        mkfifo(&ping)?;
        if let Err(e) = mkfifo(&pong) {
            let _ = std::fs::remove_file(&ping);
            return Err(e);
        }
        Ok(FifoPair {
            ping,
            pong,
            removed: false,
        })
    }

    pub fn ping(&self) -> &Path {
        &self.ping
    }

    pub fn pong(&self) -> &Path {
        &self.pong
    }

    /// Unlinks both FIFOs, reporting the first failure.
    pub fn remove(mut self) -> Result<()> {
        self.removed = true;
        let a = unlink(&self.ping);
        let b = unlink(&self.pong);
        a.and(b)
    }
}

impl Drop for FifoPair {
    fn drop(&mut self) {
        if !self.removed {
            let _ = std::fs::remove_file(&self.ping);
            let _ = std::fs::remove_file(&self.pong);
        }
    }
}

/// `mkfifo(path, 0600)`.
pub fn mkfifo(path: &Path) -> Result<()> {
    nix::unistd::mkfifo(path, Mode::S_IRUSR | Mode::S_IWUSR)
        .map_err(|e| Error::sys(e, "mkfifo", path.display()))
}

pub fn unlink(path: &Path) -> Result<()> {
    nix::unistd::unlink(path).map_err(|e| Error::sys(e, "unlink", path.display()))
}

/// `open(path, O_RDONLY)`: blocks until a writer opens the FIFO.
pub fn open_read(path: &Path) -> Result<File> {
    open(path, true)
}

/// `open(path, O_WRONLY)`: blocks until a reader opens the FIFO.
pub fn open_write(path: &Path) -> Result<File> {
    open(path, false)
}

fn open(path: &Path, read: bool) -> Result<File> {
    loop {
        let r = OpenOptions::new()
            .read(read)
            .write(!read)
            .custom_flags(libc::O_CLOEXEC)
            .open(path);
        match r {
            Ok(f) => {
                if !f.metadata().map(|m| m.file_type()).is_ok_and(is_fifo) {
                    return Err(Error::sys(
                        Errno::EINVAL,
                        "open (not a FIFO)",
                        path.display(),
                    ));
                }
                return Ok(f);
            }
            // A signal handler installed with SA_RESTART restarts open(); one without does not.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(&e, "open", path.display())),
        }
    }
}

fn is_fifo(t: std::fs::FileType) -> bool {
    use std::os::unix::fs::FileTypeExt;
    t.is_fifo()
}

/// Unlinks `path` only if it is still the very FIFO `opened` refers to (same device and inode):
/// a survivor cleaning up after a dead peer must not delete a file someone else put there since.
pub fn unlink_if_same(path: &Path, opened: &File) -> Result<bool> {
    let (Ok(at_path), Ok(ours)) = (std::fs::symlink_metadata(path), opened.metadata()) else {
        return Ok(false);
    };
    if at_path.dev() == ours.dev() && at_path.ino() == ours.ino() {
        unlink(path)?;
        return Ok(true);
    }
    Ok(false)
}

/// Checks that `dir` exists, is a directory and is writable by us; the error names the problem.
pub fn check_dir(dir: &Path) -> Result<()> {
    let meta =
        std::fs::metadata(dir).map_err(|e| Error::io(&e, "stat", dir.display()).into_usage())?;
    if !meta.is_dir() {
        return Err(Error::sys(Errno::ENOTDIR, "stat", dir.display()).into_usage());
    }
    nix::unistd::access(
        dir,
        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
    )
    .map_err(|e| Error::sys(e, "access (need write)", dir.display()).into_usage())
}

/// A fresh 0700 directory with a short path (Unix socket paths stop at 108 bytes), removed on drop.
pub fn private_dir() -> Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix("ipclab-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .map_err(|e| Error::io(&e, "mkdir", std::env::temp_dir().join("ipclab-*").display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

    /// A pair is two FIFOs, mode 0600, gone after drop.
    #[test]
    fn pair_creates_0600_fifos_and_removes_them() {
        let dir = private_dir().unwrap();
        assert_eq!(
            dir.path().metadata().unwrap().permissions().mode() & 0o777,
            0o700
        );
        let pair = FifoPair::create(dir.path(), "ping", "pong").unwrap();
        for p in [pair.ping(), pair.pong()] {
            let m = std::fs::metadata(p).unwrap();
            assert!(m.file_type().is_fifo());
            assert_eq!(m.permissions().mode() & 0o777, 0o600);
        }
        drop(pair);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// EEXIST is reported and the file that was there is left alone; nothing half-created stays.
    #[test]
    fn pair_refuses_existing_path_and_keeps_it() {
        let dir = private_dir().unwrap();
        std::fs::write(dir.path().join("pong"), b"mine").unwrap();
        let err = FifoPair::create(dir.path(), "ping", "pong").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ERROR [EEXIST File exists] mkfifo "),
            "{err}"
        );
        assert!(!dir.path().join("ping").exists());
        assert_eq!(std::fs::read(dir.path().join("pong")).unwrap(), b"mine");
    }
}
