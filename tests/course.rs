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

/// The "strace shows" lines of a header (`//!   name(...) = ...`).
fn header_strace_lines(text: &str) -> Vec<String> {
    text.lines()
        .take_while(|l| l.starts_with("//!"))
        .skip_while(|l| !l.contains("strace shows:"))
        .skip(1)
        .take_while(|l| l.starts_with("//!   "))
        .map(|l| l.trim_start_matches("//!").trim().to_string())
        .collect()
}

/// Syscall lines quoted in a README's strace section (`name(...)`, `--- SIG... ---`).
fn readme_strace_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for l in text.lines() {
        if l.starts_with("## ") {
            inside = l.contains("strace");
            continue;
        }
        if !inside {
            continue;
        }
        // A normalised excerpt (```text block): `   12.345  role   call(...) = ...`.
        let mut words = l.split_whitespace();
        if let (Some(t), Some(_role)) = (words.next(), words.next()) {
            if t.contains('.') && t.parse::<f64>().is_ok() {
                let body: Vec<&str> = words.collect();
                out.push(body.join(" ").trim_end_matches(" …").to_string());
                continue;
            }
        }
        for (i, part) in l.split('`').enumerate() {
            let code = part.replace("\\|", "|");
            let is_call = code.split('(').next().is_some_and(|n| {
                !n.is_empty()
                    && n.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            }) && code.contains('(');
            if i % 2 == 1 && (is_call || code.starts_with("--- ") || code.starts_with("+++ ")) {
                out.push(code);
            }
        }
    }
    out
}

/// strace.expected is the one source: every strace line a lab's bin/ headers or READMEs show
/// is one of its entries (same call, the entry's fragment in it), and each file parses.
#[test]
fn course_strace_lines_come_from_strace_expected() {
    let bins = cargo_bins();
    for s in ipclab::spec::all().unwrap() {
        let exp = ipclab::trace::expected::Expected::for_lab(&s).unwrap();
        let mut shown: Vec<(String, String)> = Vec::new();
        for b in &s.lab.binaries {
            let (_, path) = bins.iter().find(|(n, _)| n == b).unwrap();
            let text = std::fs::read_to_string(root().join(path)).unwrap();
            shown.extend(
                header_strace_lines(&text)
                    .into_iter()
                    .map(|l| (path.clone(), l)),
            );
        }
        for f in ["README.md", "README.fr.md"] {
            let p = format!("labs/{}/{f}", s.dir_name());
            let text = std::fs::read_to_string(root().join(&p)).unwrap();
            let lines = readme_strace_lines(&text);
            assert!(
                !lines.is_empty(),
                "{p}: no strace lines in its strace section"
            );
            shown.extend(lines.into_iter().map(|l| (p.clone(), l)));
        }
        let stray: Vec<String> = shown
            .iter()
            .filter(|(_, l)| !exp.covers(l))
            .map(|(p, l)| format!("{p}: {l}"))
            .collect();
        assert!(
            stray.is_empty(),
            "not in labs/{}/strace.expected:\n{}",
            s.dir_name(),
            stray.join("\n")
        );
    }
}
