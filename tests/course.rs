//! The course lints itself (as rustlings' `dev check` does): every lab spec, binary, header and
//! README agree with each other.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn cargo_bins() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    doc["bin"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap().to_string(),
                b["path"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Each spec's binaries are [[bin]] targets, and each [[bin]] belongs to a lab (or is the CLI).
#[test]
fn course_specs_and_binaries_agree() {
    let bins = cargo_bins();
    let specs = ipclab::spec::all().unwrap();
    for s in &specs {
        for b in &s.lab.binaries {
            assert!(
                bins.iter().any(|(n, _)| n == b),
                "lab {}: {b} is not a [[bin]]",
                s.lab.number
            );
        }
    }
    for (name, _) in &bins {
        let owned = name == "ipclab" || specs.iter().any(|s| s.lab.binaries.contains(name));
        assert!(owned, "[[bin]] {name} belongs to no lab spec");
    }
}

/// STYLE.md rule 1: every bin/ file opens with a header: the idea, `Try:`, and 3-6 strace lines.
#[test]
fn course_bin_headers_are_complete() {
    for (name, path) in cargo_bins() {
        let text = std::fs::read_to_string(root().join(&path)).unwrap();
        let header: Vec<&str> = text.lines().take_while(|l| l.starts_with("//!")).collect();
        assert!(!header.is_empty(), "{path}: no //! header");
        let joined = header.join("\n");
        if name != "ipclab" {
            assert!(
                header[0].contains("Lab "),
                "{path}: the first line names the lab"
            );
        }
        assert!(joined.contains("Try:"), "{path}: no Try: line");
        let strace: Vec<&&str> = header
            .iter()
            .skip_while(|l| !l.contains("strace shows:"))
            .skip(1)
            .take_while(|l| l.starts_with("//!   "))
            .collect();
        assert!(
            (3..=6).contains(&strace.len()),
            "{path}: {} strace lines, want 3-6",
            strace.len()
        );
    }
}

/// Each lab directory has its spec, an English and a French README naming the lab's programs.
#[test]
fn course_lab_directories_are_complete() {
    for s in ipclab::spec::all().unwrap() {
        let dir = root().join("labs").join(s.dir_name());
        for f in ["spec.toml", "README.md", "README.fr.md"] {
            assert!(dir.join(f).exists(), "{} missing", dir.join(f).display());
        }
        for f in ["README.md", "README.fr.md"] {
            let text = std::fs::read_to_string(dir.join(f)).unwrap();
            for b in &s.lab.binaries {
                assert!(
                    text.contains(b.as_str()),
                    "{}/{f} never mentions {b}",
                    s.dir_name()
                );
            }
            assert!(
                text.contains(&format!("make lab{}", s.lab.number)),
                "{}/{f}: no `make lab{}`",
                s.dir_name(),
                s.lab.number
            );
        }
    }
}
