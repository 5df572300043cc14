//! Output capture: stdout and stderr always drained, kept up to the cap, lines clipped.

use super::*;

pub(super) fn set_nonblocking(fd: &OwnedFd) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL) {
        let _ = fcntl(
            fd,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        );
    }
}

/// Drains both output pipes into `out` (stdout as timed lines, stderr as bytes); says which
/// pipe is at end of file (every writer gone).
pub(super) fn drain_outputs(
    out_r: &std::fs::File,
    err_r: &std::fs::File,
    stdout_buf: &mut Vec<u8>,
    out: &mut Outcome,
    cap: usize,
    t: Duration,
) -> [bool; 2] {
    let a = drain(
        out_r,
        stdout_buf,
        &mut out.stdout_bytes,
        cap,
        Some((&mut out.stdout_lines, t)),
    );
    let mut errbuf = std::mem::take(&mut out.stderr);
    let b = drain(err_r, &mut errbuf, &mut out.stderr_bytes, cap, None);
    out.stderr = errbuf;
    [a, b]
}

/// Longest line kept in a report; the rest is counted.
pub const LINE_CAP: usize = 4096;

/// A line as reports show it: at most LINE_CAP bytes, then how many were dropped.
pub fn clip_line(line: &[u8], also_dropped: usize) -> String {
    if line.len() <= LINE_CAP && also_dropped == 0 {
        return String::from_utf8_lossy(line).into_owned();
    }
    let keep = line.len().min(LINE_CAP);
    tf!(
        "{}… [{} bytes dropped]",
        "{}… [{} octets écartés]",
        String::from_utf8_lossy(&line[..keep]),
        line.len() - keep + also_dropped
    )
}

/// Reads all that is available: keeps up to `cap` bytes, counts the rest. With `lines`, complete
/// lines are moved out of `buf` with their arrival time.
pub(super) fn drain(
    mut f: &std::fs::File,
    buf: &mut Vec<u8>,
    total: &mut usize,
    cap: usize,
    mut lines: Option<(&mut Vec<(Duration, String)>, Duration)>,
) -> bool {
    let mut chunk = [0u8; 65536];
    loop {
        match f.read(&mut chunk) {
            Ok(0) => return true,
            Err(_) => return false,
            Ok(n) => {
                let keep = cap.saturating_sub(*total).min(n);
                *total += n;
                buf.extend_from_slice(&chunk[..keep]);
                if let Some((lines, t)) = &mut lines {
                    while let Some(i) = buf.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=i).collect();
                        lines.push((*t, clip_line(&line[..line.len() - 1], 0)));
                    }
                }
            }
        }
    }
}
