//! Event logs: JSON lines a program appends to its `--events FILE`, one `write(2)` per line so
//! that lines of concurrent writers never tear (O_APPEND). A contract like the grading ones,
//! language-neutral: a Python program writes one `print(json.dumps(...), flush=True)` per event
//! to a file opened for appending.
//!
//! Schema, version 1 (labs 8 and later): `{"v": 1, "ev": NAME, "id": I, ...}` — `v` the schema
//! version, `ev` the event's name (the lab's README lists its names and fields), `id` the
//! process's `--id`; then, where they apply, `ts_ms` (CLOCK_MONOTONIC, ms), `role`, `pid`,
//! `status`, `latency_ms`, `msg`, `peer`; any other field is the lab's own and is kept.
//! Version 0 is lab 3's log, which has no `v`: its name is in `event`, not `ev`. A line without
//! `v` reads as version 0.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The newest schema version.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Schema version; absent: 0.
    #[serde(default)]
    pub v: u32,
    /// The event's name (`ev`; `event` in version 0).
    #[serde(alias = "event")]
    pub ev: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<Value>,
    /// The lab's own fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Event {
    /// A version-1 event named `ev`.
    pub fn new(ev: &str) -> Event {
        Event {
            v: VERSION,
            ev: ev.to_string(),
            ..Event::default()
        }
    }

    /// The line written for this event (no newline). Version 0 keeps lab 3's shape: `ts_ms`
    /// first, the name under `event`, no `v`.
    pub fn line(&self) -> String {
        let mut m = Map::new();
        let full = serde_json::to_value(self).unwrap_or_default();
        let Value::Object(mut f) = full else {
            return String::new();
        };
        if self.v == 0 {
            if let Some(t) = f.shift_remove("ts_ms") {
                m.insert("ts_ms".into(), t);
            }
            f.shift_remove("v");
            if let Some(e) = f.shift_remove("ev") {
                m.insert("event".into(), e);
            }
        }
        m.extend(f);
        Value::Object(m).to_string()
    }
}

/// Appends events to a log, one write per line.
pub struct Writer {
    file: File,
}

impl Writer {
    /// Opens `path` for appending, creating it 0600 if it is not there.
    pub fn open(path: &Path) -> std::io::Result<Writer> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        Ok(Writer { file })
    }

    /// Writes `e` as one line in one `write(2)`; the line written.
    pub fn write(&mut self, e: &Event) -> std::io::Result<String> {
        let mut line = e.line();
        line.push('\n');
        let n = nix::unistd::write(&self.file, line.as_bytes())?;
        if n != line.len() {
            return Err(std::io::Error::other(format!(
                "short write to the event log: {n} of {} bytes",
                line.len()
            )));
        }
        line.pop();
        Ok(line)
    }
}

/// A log as read back: its events, and the lines that were not events (quoted by judges).
#[derive(Debug, Default)]
pub struct Log {
    pub events: Vec<Event>,
    pub bad: Vec<(usize, String)>,
}

impl Log {
    /// Reads `path`; a missing file is an empty log.
    pub fn read(path: &Path) -> Log {
        let mut log = Log::default();
        let Ok(f) = File::open(path) else {
            return log;
        };
        for (i, l) in BufReader::new(f).lines().enumerate() {
            let Ok(l) = l else { break };
            if l.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Event>(&l) {
                Ok(e) => log.events.push(e),
                Err(_) => log.bad.push((i + 1, l)),
            }
        }
        log
    }

    /// The events named `ev`.
    pub fn named<'a>(&'a self, ev: &'a str) -> impl Iterator<Item = &'a Event> + 'a {
        self.events.iter().filter(move |e| e.ev == ev)
    }

    /// Whether an event named `ev` has pid `pid`.
    pub fn has(&self, ev: &str, pid: i64) -> bool {
        self.named(ev).any(|e| e.pid == Some(pid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-0 line (lab 3's) reads with its name from `event`, and is written back in the
    /// same shape; a version-1 line keeps `v`, `ev` and the lab's own fields.
    #[test]
    fn versions_0_and_1_read_and_write() {
        let v0 = r#"{"ts_ms":12,"event":"restart","role":"secondary-1","pid":42,"latency_ms":3}"#;
        let e: Event = serde_json::from_str(v0).unwrap();
        assert_eq!((e.v, e.ev.as_str(), e.pid), (0, "restart", Some(42)));
        assert_eq!(e.line(), v0);
        let v1 = r#"{"v":1,"ev":"send","id":2,"msg":"m1","peer":3,"clock":[1,0,2]}"#;
        let e: Event = serde_json::from_str(v1).unwrap();
        assert_eq!(
            (e.v, e.id, e.extra["clock"][2].as_u64()),
            (1, Some(2), Some(2))
        );
        assert_eq!(e.line(), v1);
        assert!(serde_json::from_str::<Event>(r#"{"v":1}"#).is_err());
    }

    /// Lines of several writers never tear: each event is one write to an O_APPEND file.
    #[test]
    fn one_write_per_line_and_bad_lines_are_kept_apart() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ev.jsonl");
        let mut w1 = Writer::open(&p).unwrap();
        let mut w2 = Writer::open(&p).unwrap();
        for i in 0..50 {
            let mut e = Event::new("tick");
            e.id = Some(i % 2);
            if i % 2 == 0 { &mut w1 } else { &mut w2 }
                .write(&e)
                .unwrap();
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"not json\n"))
            .unwrap();
        let log = Log::read(&p);
        assert_eq!(log.named("tick").count(), 50);
        assert_eq!(log.bad, vec![(51, "not json".to_string())]);
        let md = std::fs::metadata(&p).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o777,
            0o600
        );
    }
}
