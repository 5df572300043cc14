//! Helpers shared by the integration tests: run the real binaries, with a safety-net timeout, and
//! prove that a test left nothing behind.
//!
//! Fork rule (nix's): a test that starts processes holds `fork_guard()` until every one of them
//! is reaped, so no test reaps another's children even when the harness runs tests on several
//! threads (make test also runs one at a time, one binary per lab). Tests never fork themselves:
//! std's Command forks and execs at once.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Held by every test that starts processes, from its first spawn until all are reaped (see
/// the fork rule above). A test that panicked while holding it poisons it; the next one goes on.
pub static FORK_MTX: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn fork_guard() -> std::sync::MutexGuard<'static, ()> {
    FORK_MTX.lock().unwrap_or_else(|e| e.into_inner())
}

/// `labs/labN-name/` of lab `n`.
pub fn lab_dir(n: u32) -> PathBuf {
    let labs = Path::new(env!("CARGO_MANIFEST_DIR")).join("labs");
    std::fs::read_dir(&labs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with(&format!("lab{n}-")))
        })
        .unwrap_or_else(|| panic!("no labs/lab{n}-*"))
}

/// A fixture of lab `n`: `labs/labN-name/fixtures/<name>`.
pub fn fixture(n: u32, name: &str) -> PathBuf {
    lab_dir(n).join("fixtures").join(name)
}

/// Generous: a loaded 2-core machine must pass. Only a safety net, never a synchronisation.
pub const SAFETY: Duration = Duration::from_secs(120);

pub fn bin(name: &str) -> PathBuf {
    // Integration tests sit in target/debug/deps; the binaries in target/debug.
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join(name);
    assert!(p.exists(), "{} not built", p.display());
    p
}

/// Runs to the end (stdin /dev/null), killing the command if it outlives SAFETY.
pub fn run(cmd: &mut Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    finish(child)
}

/// Waits for a spawned child and collects its output, with the SAFETY net.
pub fn finish(child: Child) -> Output {
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(SAFETY) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("pid {pid} still running after {:?}", SAFETY);
        }
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Reads lines from `r` until one contains `needle`; returns everything read. Panics (instead
/// of hanging the suite) if nothing arrives for SAFETY.
pub fn read_until<T: Read + std::os::fd::AsFd>(r: &mut BufReader<T>, needle: &str) -> String {
    let mut all = String::new();
    loop {
        if r.buffer().is_empty() {
            let ready = ipclab::signals::poll_fds(&[r.get_ref().as_fd()], Some(SAFETY)).unwrap();
            assert!(
                ready[0],
                "nothing for {SAFETY:?} while waiting for {needle:?}; got:\n{all}"
            );
        }
        let mut line = String::new();
        let n = r.read_line(&mut line).expect("read");
        assert!(n > 0, "output ended before {needle:?}; got:\n{all}");
        all.push_str(&line);
        if line.contains(needle) {
            return all;
        }
    }
}

pub fn stderr_reader(child: &mut Child) -> BufReader<std::process::ChildStderr> {
    BufReader::new(child.stderr.take().expect("stderr piped"))
}

pub fn drain(mut r: impl Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}

/// First number after `prefix`.
pub fn number_after(text: &str, prefix: &str) -> Option<i32> {
    let rest = &text[text.find(prefix)? + prefix.len()..];
    rest.chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()
}

/// A private directory for one test's IPC objects.
pub fn private_dir() -> tempfile::TempDir {
    ipclab::fifo::private_dir().expect("private dir")
}

pub fn dir_entries(dir: &Path) -> Vec<String> {
    ipclab::sandbox::BoxDir::entries(dir)
}

/// A shm name prefix unique to one test, so leak checks look at our objects only.
pub fn test_prefix() -> String {
    format!("ipclabtest{:08x}", rand::random::<u32>())
}

/// The machine state a test must leave as it found it: our descendants and our shm objects.
pub struct Clean {
    shm_prefix: String,
}

impl Clean {
    pub fn new(shm_prefix: &str) -> Clean {
        Clean {
            shm_prefix: shm_prefix.to_string(),
        }
    }

    /// Reaps what was re-parented to us (tests that are subreapers), then asserts: no process
    /// of this test left (alive or zombie), no shm object with our prefix.
    pub fn check(&self) {
        // Adopted orphans may still be exiting: give them time (a safety net), reap them.
        let (_, running) =
            ipclab::process::reap_children_within(std::time::Duration::from_secs(10));
        for pid in &running {
            let _ = nix::sys::signal::kill(*pid, nix::sys::signal::Signal::SIGKILL);
            let _ = ipclab::process::wait_for(*pid);
        }
        assert!(
            running.is_empty(),
            "still running 10 s after the test: {running:?}"
        );
        let me = std::process::id() as i32;
        let left = ipclab::inspect::descendants(me);
        assert!(
            left.is_empty(),
            "processes left behind: {:?}",
            left.iter().map(|p| p.row()).collect::<Vec<_>>()
        );
        // Scoped to this test's runs: an object named `P-UID-PID-X` whose creator PID still runs
        // belongs to another run on this machine (another grader, a student) — none of our tree
        // runs any more, as just asserted.
        let shm: Vec<String> = ipclab::inspect::shm_objects(&self.shm_prefix)
            .into_iter()
            .filter(|name| match creator(name) {
                Some(pid) if pid != me => ipclab::inspect::info(pid).is_none_or(|i| i.is_zombie()),
                _ => true,
            })
            .collect();
        assert!(shm.is_empty(), "/dev/shm objects left behind: {shm:?}");
    }
}

/// The creator's pid in a `shm::unique_name` (`prefix-UID-PID-XXXXXXXX`).
fn creator(name: &str) -> Option<i32> {
    let mut parts = name.rsplit('-');
    parts.next()?;
    parts.next()?.parse().ok()
}

/// Root can drop to this uid to test what students see (tests skip, saying why, elsewhere).
pub const NOBODY: u32 = 65534;

/// `setpriv` command running `program` as NOBODY, or None (with the reason printed) when we
/// are not root or setpriv is missing: then the tests already run unprivileged.
pub fn as_nobody(program: &Path) -> Option<Command> {
    if !nix::unistd::getuid().is_root() {
        eprintln!("skip: not root, so this run is already unprivileged");
        return None;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skip: setpriv (util-linux) not installed");
        return None;
    }
    let mut c = Command::new("setpriv");
    c.args([
        &format!("--reuid={NOBODY}"),
        &format!("--regid={NOBODY}"),
        "--clear-groups",
        "--",
    ])
    .arg(program);
    Some(c)
}

/// A fresh 0755 directory a dropped uid can traverse and read (removed on drop).
pub fn world_dir(prefix: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// `cc -O2 -o exe FLAGS src`, asserting it compiled.
pub fn cc(src: &Path, exe: &Path, flags: &[&str]) {
    let out = run(Command::new("cc")
        .args(["-O2", "-o"])
        .arg(exe)
        .args(flags)
        .arg(src));
    assert!(
        out.status.success(),
        "cc {}: {}",
        src.display(),
        text(&out.stderr)
    );
}

/// Copies the named binaries into a fresh 0755 directory a dropped uid can reach (/work and
/// target/ may be private); the directory is removed on drop.
pub fn world_readable_bins(names: &[&str]) -> tempfile::TempDir {
    let d = world_dir("ipclab-bins-");
    for n in names {
        std::fs::copy(bin(n), d.path().join(n)).unwrap();
    }
    d
}

/// A directory owned by NOBODY, mode 0700 (DIR for a dropped-uid run).
pub fn nobody_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::Builder::new()
        .prefix("ipclab-nobody-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    nix::unistd::chown(d.path(), Some(NOBODY.into()), Some(NOBODY.into())).unwrap();
    d
}

/// `sleep 60` running as `uid` (a bystander an attack must not reach, or a stand-in for a
/// host's daemon); the caller kills and waits for it.
pub fn sleeper_as(uid: u32) -> Child {
    // It says "ready" once it runs as uid (setpriv changes uid after the spawn returns): a
    // caller that looks for the uid at once must not race the change.
    let mut child = Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
            "sh",
            "-c",
            "echo ready; exec sleep 60",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("setpriv sleep");
    let mut line = [0u8; 6];
    if let Some(out) = child.stdout.as_mut() {
        let _ = out.read_exact(&mut line);
    }
    assert_eq!(&line, b"ready\n", "the sleeper did not start as uid {uid}");
    child
}
