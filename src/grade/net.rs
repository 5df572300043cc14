//! Where a network lab's run lives (labs 8 and 9). As root the run has a network namespace of
//! its own: every launch joins it, the grader's sockets are made in it, and the sheet's ports
//! are free there. A normal user's grader cannot enter a namespace its program runs in: both
//! share the machine's loopback, on ports the kernel says are free.

use super::harness::Launch;
use crate::error::Result;
use crate::sandbox::NetNs;
use std::thread::JoinHandle;

pub struct RunNet {
    pub ns: Option<NetNs>,
}

impl RunNet {
    pub fn new() -> Result<RunNet> {
        Ok(RunNet {
            ns: if nix::unistd::geteuid().is_root() {
                Some(NetNs::new()?)
            } else {
                None
            },
        })
    }

    /// The sheet's port in the run's own namespace; a free one on a shared network.
    pub fn port(&self, sheet: u16) -> Result<u16> {
        match self.ns {
            Some(_) => Ok(sheet),
            None => crate::inet::free_port(),
        }
    }

    /// `f` on a thread in the run's network (sockets it makes stay there).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        match &self.ns {
            Some(ns) => ns.run(f),
            None => Ok(f()),
        }
    }

    /// `f` on a thread of its own in the run's network, left running. The namespace's
    /// descriptor outlives the thread: callers join it before dropping `self`.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<T> {
        let fd = self.ns.as_ref().map(|n| n.raw_fd());
        std::thread::spawn(move || {
            if let Some(fd) = fd {
                // Safety: setns on the run's namespace, held by the caller (see above).
                unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
            }
            f()
        })
    }

    /// `l` runs in this network.
    pub fn apply(&self, l: &mut Launch) {
        match &self.ns {
            Some(ns) => l.join_netns = Some(ns.raw_fd()),
            None => {
                l.netns = false;
                l.user_pid_ns = false;
            }
        }
    }

    /// The report header's line about the network.
    pub fn protection(&self) -> String {
        if self.ns.is_some() {
            tf!(
                "network: one namespace of the run's own (loopback only), shared by its roles and the grader's sockets",
                "réseau : un espace de noms propre à l'exécution (boucle locale seule), partagé par ses rôles et les sockets du correcteur"
            )
        } else {
            tf!(
                "network: the machine's loopback, on ports the kernel said were free (a normal user's grader cannot enter the program's namespace)",
                "réseau : la boucle locale de la machine, sur des ports que le noyau disait libres (le correcteur d'un utilisateur ordinaire ne peut entrer dans l'espace de noms du programme)"
            )
        }
    }
}
