//! The box's host side: uid leases, the stale-box sweep, host boxes' named leases.
//! Needs root (the leases live in /run/ipclab); skipped, saying so, otherwise.

mod common;
use common::*;
use ipclab::sandbox::{Lease, UID_FIRST, UID_LAST};
use std::process::Command;

fn root() -> bool {
    let r = nix::unistd::geteuid().is_root();
    if !r {
        eprintln!("skipped: needs root (/run/ipclab)");
    }
    r
}

/// Two leases held at once never share a uid, and a uid in use by a process no lease names is
/// never handed out (nor its process killed).
#[test]
fn sandbox_leases_are_exclusive_and_skip_foreign_uids() {
    let _forks = common::fork_guard();
    if !root() {
        return;
    }
    let a = Lease::claim().unwrap();
    // A stranger running as the next uid of the range, with no lease of ours naming it.
    let next = (a.uid() + 1..=UID_LAST)
        .find(|u| !std::path::Path::new(&format!("/run/ipclab/leases/{u}")).exists())
        .unwrap();
    let mut stranger = sleeper_as(next);
    let mut held = vec![a];
    for _ in 0..3 {
        held.push(Lease::claim().unwrap());
    }
    let uids: Vec<u32> = held.iter().map(|l| l.uid()).collect();
    let alive = ipclab::inspect::info(stranger.id() as i32).is_some_and(|i| !i.is_zombie());
    let _ = stranger.kill();
    let _ = stranger.wait();
    let mut sorted = uids.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), uids.len(), "a uid leased twice: {uids:?}");
    assert!(uids.iter().all(|u| (UID_FIRST..=UID_LAST).contains(u)));
    assert!(
        !uids.contains(&next),
        "leased {next}, which a stranger runs as: {uids:?}"
    );
    assert!(alive, "claiming leases killed a stranger's process");
}

/// A host box's lease outlives its maker and every sweep (`ipclab clean`, the next grading);
/// only its teardown ends it, killing what runs as its uid.
#[test]
fn sandbox_host_lease_is_left_to_its_owner() {
    let _forks = common::fork_guard();
    if !root() {
        return;
    }
    let name = format!("test-host-{:06x}", rand::random::<u32>() & 0xffffff);
    let uid = Lease::persistent(&name).unwrap();
    assert!(
        Lease::persistent(&name).is_err(),
        "the same host made twice"
    );
    let mut sshd_like = sleeper_as(uid);
    let out = run(Command::new(bin("ipclab")).arg("clean"));
    assert!(out.status.success());
    let claimed = Lease::claim().unwrap();
    assert_ne!(claimed.uid(), uid, "a host's uid was leased to a grading");
    drop(claimed);
    assert!(
        ipclab::inspect::info(sshd_like.id() as i32).is_some_and(|i| !i.is_zombie()),
        "the sweep killed a host's process"
    );
    assert!(Lease::persistent_list().contains(&(uid, name.clone())));
    assert_eq!(Lease::end_persistent(&name).unwrap(), uid);
    let st = sshd_like.wait().unwrap();
    assert!(!st.success(), "the host's process survived its teardown");
    assert!(!Lease::persistent_list().iter().any(|(_, n)| *n == name));
    assert!(Lease::end_persistent(&name).is_err());
}

/// A host box: its user named in its own passwd, a home only it owns, left alone by sweeps;
/// `destroy` kills what runs as it and leaves nothing (directory, lease).
#[test]
fn sandbox_host_box_has_a_user_and_goes_only_by_destroy() {
    let _forks = common::fork_guard();
    if !root() {
        return;
    }
    let name = format!("test-hb-{:06x}", rand::random::<u32>() & 0xffffff);
    let hb = ipclab::sandbox::HostBox::create(&name).unwrap();
    let passwd = std::fs::read_to_string(hb.root.join("etc/passwd")).unwrap();
    assert!(
        passwd.contains(&format!("{name}-user:x:{}:{}:", hb.uid, hb.uid)),
        "{passwd}"
    );
    let home = std::fs::metadata(hb.root.join("home")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&home), hb.uid);
    let mut daemon = sleeper_as(hb.uid);
    assert!(run(Command::new(bin("ipclab")).arg("clean"))
        .status
        .success());
    assert!(hb.root.exists(), "the sweep removed a host box");
    assert!(ipclab::sandbox::HostBox::list()
        .iter()
        .any(|h| h.name == name));
    ipclab::sandbox::HostBox::destroy(&name).unwrap();
    assert!(!daemon.wait().unwrap().success());
    assert!(!hb.root.exists());
    assert!(!ipclab::sandbox::HostBox::list()
        .iter()
        .any(|h| h.name == name));
}
