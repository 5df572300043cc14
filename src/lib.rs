//! ipclab: the Unix IPC primitives the labs teach, each a thin layer over nix/libc, and the
//! tooling (lab specs, walkthroughs) built on them. Primitives never depend on the tooling.

// First, so that its `tf!` is in scope in every module below.
#[macro_use]
pub mod lang;
pub mod args;
pub mod daemon;
pub mod doctor;
pub mod error;
pub mod evlog;
pub mod faults;
pub mod fifo;
pub mod frame;
pub mod grade;
pub mod heartbeat;
pub mod hosts;
pub mod inet;
pub mod inspect;
pub mod kit;
pub mod labs;
pub mod package;
pub mod process;
pub mod relay;
pub mod sandbox;
pub mod shm;
pub mod signals;
pub mod spec;
pub mod trace;
pub mod walkthrough;
pub mod wire;
pub mod zoo;

pub use error::{Error, Result};

/// The library's own tests follow nix's fork rule: a test that starts a process holds this until
/// the process is reaped, so no test reaps another's child whatever the number of test threads.
#[cfg(test)]
pub(crate) static FORK_MTX: std::sync::Mutex<()> = std::sync::Mutex::new(());
