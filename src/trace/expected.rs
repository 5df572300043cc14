//! `labs/labN-*/strace.expected`: the key syscalls of a lab's reference trace, the one source of
//! the "strace shows" lines of the bin/ headers and the READMEs. One entry per line:
//!
//! ```text
//! ROLE  CALL[|CALL...]  FRAGMENT
//! ```
//!
//! matched per role as an ordered subsequence of that role's normalised lines: CALL is a syscall
//! name, with alternatives for kernel and libc differences (`clone|clone3`, `openat|open`), or
//! `+++` (an exit) or `---` (a signal); FRAGMENT, possibly empty, must appear in the line.
//! Never an exact-text diff: other lines may come between, and arguments may differ elsewhere.

use super::parse::{Kind, Normaliser, Trace};
use crate::error::{Error, Result};
use crate::spec::Spec;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Entry {
    pub role: String,
    pub calls: Vec<String>,
    pub fragment: String,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct Expected {
    pub entries: Vec<Entry>,
}

/// Where the lab's file lives in the source tree.
pub fn path_of(s: &Spec) -> PathBuf {
    PathBuf::from("labs")
        .join(s.dir_name())
        .join("strace.expected")
}

impl Expected {
    pub fn parse(text: &str) -> std::result::Result<Expected, String> {
        let mut entries = Vec::new();
        for (i, l) in text.lines().enumerate() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let mut words = l.split_whitespace();
            let (Some(role), Some(calls)) = (words.next(), words.next()) else {
                return Err(format!("line {}: want ROLE CALL [FRAGMENT]", i + 1));
            };
            // The fragment is the rest of the line, inner spaces kept.
            let after_calls = l[role.len()..].trim_start()[calls.len()..].trim();
            entries.push(Entry {
                role: role.to_string(),
                calls: calls.split('|').map(str::to_string).collect(),
                fragment: after_calls.to_string(),
                line: i + 1,
            });
        }
        if entries.is_empty() {
            return Err("no entries".into());
        }
        Ok(Expected { entries })
    }

    /// The file compiled into the binary for lab `s`.
    pub fn for_lab(s: &Spec) -> Result<Expected> {
        let text = crate::spec::file(&s.dir_name(), "strace.expected")
            .ok_or_else(|| Error::runtime(format!("{}: missing", path_of(s).display())))?;
        Expected::parse(text).map_err(|e| Error::runtime(format!("{}: {e}", path_of(s).display())))
    }

    /// Entries not found, in the form `ROLE CALL FRAGMENT (line N)`.
    pub fn check(&self, t: &Trace, norm: &Normaliser) -> Vec<String> {
        let mut missing = Vec::new();
        let mut roles: Vec<&str> = self.entries.iter().map(|e| e.role.as_str()).collect();
        roles.dedup();
        let mut seen_roles = std::collections::BTreeSet::new();
        for role in roles {
            if !seen_roles.insert(role) {
                continue;
            }
            let lines: Vec<(String, String)> = t
                .events
                .iter()
                .filter(|e| t.role(e.pid) == role)
                .map(|e| {
                    let call = match &e.kind {
                        Kind::Call { name, .. } => name.clone(),
                        Kind::Exit { .. } => "+++".into(),
                        Kind::Signal { .. } => "---".into(),
                    };
                    (call, norm.body(e))
                })
                .collect();
            let mut at = 0;
            for en in self.entries.iter().filter(|e| e.role == role) {
                let found = lines[at.min(lines.len())..]
                    .iter()
                    .position(|(c, body)| en.calls.contains(c) && body.contains(&en.fragment));
                match found {
                    Some(i) => at += i + 1,
                    None => missing.push(format!(
                        "{} {} {} (line {})",
                        en.role,
                        en.calls.join("|"),
                        en.fragment,
                        en.line
                    )),
                }
            }
        }
        missing
    }

    /// Whether an "strace shows" line (`name(...) = ...`) is one of ours: same call, and an
    /// entry's fragment in it.
    pub fn covers(&self, shown: &str) -> bool {
        let shown = shown.trim();
        let call = if shown.starts_with("+++") {
            "+++"
        } else if shown.starts_with("---") {
            "---"
        } else {
            shown.split('(').next().unwrap_or("")
        };
        self.entries
            .iter()
            .any(|e| e.calls.iter().any(|c| c == call) && shown.contains(&e.fragment))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lab_has_a_parsable_expected_file() {
        for s in crate::spec::all().unwrap() {
            let e = Expected::for_lab(&s).unwrap();
            assert!(
                e.covers(&format!("{}(x) = 0", e.entries[0].calls[0]))
                    || !e.entries[0].fragment.is_empty()
            );
        }
        assert!(Expected::parse("# nothing\n").is_err());
    }
}
