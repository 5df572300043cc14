//! Lab 5: zombie, reaper and orphan reference programs, judged by what /proc and wait show.
//! This test binary makes itself a child subreaper to adopt (and reap) the orphans it causes.

mod common;
use common::*;
use rand::RngExt;
use std::process::Command;

/// The zombie maker shows Z before the wait, still Z after SIGKILL, and nothing after waitpid.
#[test]
fn lab5_zombie_is_z_until_reaped_and_ignores_sigkill() {
    let _forks = common::fork_guard();
    let out = run(&mut Command::new(bin("zombie")));
    let s = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let child = number_after(&s, "forked child ").unwrap();
    let rows: Vec<&str> = s
        .lines()
        .filter(|l| l.contains(&format!(": {child} ")))
        .collect();
    assert_eq!(rows.len(), 2, "{s}");
    assert!(
        rows.iter()
            .all(|r| r.contains(" Z ") && r.contains("<defunct>")),
        "{s}"
    );
    assert!(s.contains(&format!("no /proc/{child} (gone)")), "{s}");
    assert!(ipclab::inspect::info(child).is_none());
    Clean::new("ipclab-none").check();
}

/// M children die while SIGCHLD is blocked: one delivery, and the WNOHANG loop reaps all M.
#[test]
fn lab5_reaper_one_sigchld_for_m_deaths_reaps_all() {
    let _forks = common::fork_guard();
    let m: u32 = rand::rng().random_range(2..=64);
    let out = run(Command::new(bin("reaper")).args(["--children", &m.to_string()]));
    let s = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{s}");
    // Stdout is the grading contract: one line per child, any order.
    let mut lines: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    lines.sort();
    let mut want: Vec<String> = (1..=m)
        .map(|i| format!("child {i} exited with status {i}"))
        .collect();
    want.sort();
    assert_eq!(lines, want);
    assert!(
        s.contains(&format!(
            "all {m} children are zombies; SIGCHLD pending: yes, once"
        )),
        "{s}"
    );
    assert!(
        s.contains(&format!("delivered 1 time(s) for {m} deaths")),
        "{s}"
    );
    assert!(s.contains(&format!("reaped {m} children")), "{s}");
    Clean::new("ipclab-none").check();
}

/// With --subreaper the launcher adopts the orphan and reaps it.
#[test]
fn lab5_orphan_adopted_by_launcher_subreaper() {
    let _forks = common::fork_guard();
    let out = run(Command::new(bin("orphan")).arg("--subreaper"));
    let s = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{s}");
    let launcher = number_after(&s, "[launcher ").unwrap();
    let child = number_after(&s, "[child ").unwrap();
    assert!(s.contains(&format!("my parent is now {launcher} ")), "{s}");
    assert!(
        s.contains(&format!(
            "reaped adopted orphan {child}: exited with status 0"
        )),
        "{s}"
    );
    Clean::new("ipclab-none").check();
}

/// Without it, the nearest subreaper above (this test process) adopts the orphan.
#[test]
fn lab5_orphan_adopted_by_nearest_subreaper_above() {
    let _forks = common::fork_guard();
    ipclab::process::set_child_subreaper().unwrap();
    let out = run(&mut Command::new(bin("orphan")));
    let s = text(&out.stdout);
    let me = std::process::id();
    assert!(s.contains(&format!("my parent is now {me} ")), "{s}");
    let child = number_after(&s, "[child ").unwrap();
    let st = ipclab::process::wait_for(nix::unistd::Pid::from_raw(child)).unwrap();
    assert_eq!(ipclab::process::shell_status(&st), 0);
    Clean::new("ipclab-none").check();
}

#[test]
fn lab5_bad_children_count_is_exit_2() {
    let _forks = common::fork_guard();
    for bad in ["0", "-2", "many", "1001"] {
        let out = run(Command::new(bin("reaper")).args(["--children", bad]));
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert_eq!(text(&out.stderr).lines().count(), 1);
    }
}
