//! The lab registry: the only list of labs in code. Each lab is one folder, `labs/labN-name/`:
//! its spec.toml, READMEs, strace.expected, kits and fixtures, and its code (`mod.rs`: what it
//! gives the grader, the trace and the walkthrough). The engines never name a lab: the CLI hands
//! them the registry's entries. A new lab is a new folder and one line below.

use crate::grade::Gradable;
use crate::walkthrough::Walkable;

/// Everything a lab provides, behind one trait; a lab without a grading contract (lab 7) has
/// no `grading`.
pub trait Lab: Walkable {
    fn grading(&self) -> Option<&dyn Gradable>;
}

macro_rules! registry {
    ($($m:ident = $path:literal;)*) => {
        $(#[path = $path] mod $m;)*
        /// Every lab, in lab order.
        pub static ALL: &[&dyn Lab] = &[$(&$m::LAB),*];
    };
}

// The one line a new lab adds here: `labN = "../labs/labN-name/mod.rs";`.
registry! {
    lab1 = "../labs/lab1-shm/mod.rs";
    lab2 = "../labs/lab2-pingpong/mod.rs";
    lab3 = "../labs/lab3-watchdog/mod.rs";
    lab4 = "../labs/lab4-client/mod.rs";
    lab5 = "../labs/lab5-zombies/mod.rs";
    lab6 = "../labs/lab6-daemon/mod.rs";
    lab7 = "../labs/lab7-zoo/mod.rs";
    lab8 = "../labs/lab8-sockets/mod.rs";
    lab9 = "../labs/lab9-fingerd/mod.rs";
}

/// Lab `n`, or a usage error listing the labs there are.
pub fn find(n: u32) -> crate::Result<&'static dyn Lab> {
    ALL.iter()
        .copied()
        .find(|l| crate::spec::number_of(l.dir()) == n)
        .ok_or_else(|| {
            let have: Vec<String> = ALL
                .iter()
                .map(|l| crate::spec::number_of(l.dir()).to_string())
                .collect();
            crate::Error::usage(format!("no lab {n}: labs are {}", have.join(", ")))
        })
}

/// The grading side of every lab that has a contract.
pub fn gradable() -> Vec<&'static dyn Gradable> {
    ALL.iter().filter_map(|l| l.grading()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registry, the folders under labs/ and the specs agree: one entry per folder, in lab
    /// order, numbered as its folder, graded exactly when its spec has a contract.
    #[test]
    fn registry_matches_the_lab_folders() {
        let dirs: Vec<&str> = ALL.iter().map(|l| l.dir()).collect();
        assert_eq!(dirs, crate::spec::dirs());
        for l in ALL {
            let s = l.spec().unwrap();
            assert_eq!(s.dir_name(), l.dir());
            assert_eq!(s.contract.is_some(), l.grading().is_some(), "{}", l.dir());
        }
        assert_eq!(find(99).err().map(|e| e.code()), Some(2));
    }
}
