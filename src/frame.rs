//! Length-prefixed frames over a byte stream (Unix stream sockets): a 4-byte big-endian length,
//! then that many bytes of UTF-8 text. Streams have no message boundaries; the prefix makes them.

use crate::error::Error;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

/// Longest payload accepted: a larger length is a malformed frame, not an allocation.
pub const MAX_FRAME: usize = 64 * 1024;

#[derive(Debug)]
pub enum FrameError {
    Io(io::Error),
    /// The length says more than MAX_FRAME.
    TooLong(usize),
    /// The stream ended inside a frame.
    Truncated,
    NotUtf8,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Io(e) => write!(f, "{e}"),
            FrameError::TooLong(n) => write!(f, "frame of {n} bytes (at most {MAX_FRAME})"),
            FrameError::Truncated => f.write_str("stream ended inside a frame"),
            FrameError::NotUtf8 => f.write_str("frame is not UTF-8 text"),
        }
    }
}

/// Writes one frame with a single write of prefix and payload.
pub fn write(w: &mut impl Write, msg: &str) -> io::Result<()> {
    let mut buf = Vec::with_capacity(4 + msg.len());
    buf.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    buf.extend_from_slice(msg.as_bytes());
    w.write_all(&buf)
}

/// Reads one frame; Ok(None) at a clean end of stream (between frames).
pub fn read(r: &mut impl Read) -> Result<Option<String>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    let n = u32::from_be_bytes(len) as usize;
    if n > MAX_FRAME {
        return Err(FrameError::TooLong(n));
    }
    let mut body = vec![0u8; n];
    r.read_exact(&mut body).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Truncated
        } else {
            FrameError::Io(e)
        }
    })?;
    String::from_utf8(body)
        .map(Some)
        .map_err(|_| FrameError::NotUtf8)
}

/// A listening Unix socket whose path is removed when it is dropped (and only then: a path that
/// already exists is refused with EADDRINUSE, never removed).
pub struct Bound {
    pub listener: UnixListener,
    path: PathBuf,
}

impl Bound {
    /// socket + bind + listen. A path where a server still listens is bad input (EADDRINUSE,
    /// exit status 2). A dead server's socket — a socket file that refuses connections, left by
    /// a process killed before it could unlink it — is replaced: that is how a restarted server
    /// gets its address back.
    pub fn new(path: &Path) -> crate::Result<Bound> {
        let bind = || UnixListener::bind(path);
        let listener = match bind() {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && is_dead_socket(path) => {
                let _ = std::fs::remove_file(path);
                bind()
            }
            other => other,
        }
        .map_err(|e| {
            let err = Error::io(&e, "bind", path.display());
            if e.kind() == io::ErrorKind::AddrInUse {
                err.into_usage()
            } else {
                err
            }
        })?;
        Ok(Bound {
            listener,
            path: path.to_path_buf(),
        })
    }
}

fn is_dead_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    is_socket
        && matches!(
            std::os::unix::net::UnixStream::connect(path),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused
        )
}

impl Drop for Bound {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames survive a byte stream split anywhere; bad lengths and cut streams are errors.
    #[test]
    fn frames_round_trip_and_reject_garbage() {
        let mut buf = Vec::new();
        write(&mut buf, "HELLO").unwrap();
        write(&mut buf, "").unwrap();
        let mut r = &buf[..];
        assert_eq!(read(&mut r).unwrap().as_deref(), Some("HELLO"));
        assert_eq!(read(&mut r).unwrap().as_deref(), Some(""));
        assert!(read(&mut r).unwrap().is_none());
        assert!(matches!(
            read(&mut &[0xff, 0xff, 0xff, 0xff][..]),
            Err(FrameError::TooLong(_))
        ));
        assert!(matches!(
            read(&mut &[0, 0, 0, 9, b'a'][..]),
            Err(FrameError::Truncated)
        ));
        assert!(matches!(read(&mut &[0, 0][..]), Err(FrameError::Truncated)));
    }
}
