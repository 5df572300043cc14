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

/// The layers of the crate, by top-level module (src/NAME.rs or src/NAME/).
const PRIMITIVES: &[&str] = &[
    "error", "args", "fifo", "shm", "signals", "process", "daemon", "inspect", "sandbox", "evlog",
    "lang", "hosts", "inet", "relay", "wire", "faults",
];
/// Code of particular labs shared by their reference programs and their lab folder.
const LAB_LIBRARIES: &[&str] = &["frame", "heartbeat", "zoo"];
const ENGINES: &[&str] = &[
    "spec",
    "grade",
    "trace",
    "walkthrough",
    "kit",
    "package",
    "doctor",
];
const REGISTRY: &str = "labs";

/// Rust files under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            if !p.ends_with("kits") && !p.ends_with("fixtures") {
                out.extend(rust_files(&p));
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The code of a Rust file without its comments and its `#[cfg(test)]` module.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The crate's top-level modules a piece of code names (`crate::x`, `use crate::{x, y}`, and
/// `ipclab::x` in binaries).
fn modules_named(code: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let path = regex::Regex::new(r"\b(?:crate|ipclab)::([a-z_]+)").unwrap();
    for c in path.captures_iter(code) {
        out.insert(c[1].to_string());
    }
    let group = regex::Regex::new(r"\b(?:crate|ipclab)::\{([^;]*?)\};").unwrap();
    for c in group.captures_iter(code) {
        let mut depth = 0;
        let mut item = String::new();
        for ch in c[1].chars().chain([',']) {
            match ch {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        out.insert(name);
                    }
                    item.clear();
                    continue;
                }
                _ => {}
            }
            if depth == 0 {
                item.push(ch);
            }
        }
    }
    out.retain(|m| m != "Error" && m != "Result" && m != "say");
    out
}

/// The module graph: top-level module -> the modules its files name.
fn module_graph() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut g: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for f in rust_files(&root().join("src")) {
        let rel = f.strip_prefix(root().join("src")).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" {
            continue;
        }
        let named = modules_named(&code_of(&std::fs::read_to_string(&f).unwrap()));
        g.entry(top.clone())
            .or_default()
            .extend(named.into_iter().filter(|m| *m != top));
    }
    // The labs' folders are the registry's modules.
    for f in rust_files(&root().join("labs")) {
        let named = modules_named(&code_of(&std::fs::read_to_string(&f).unwrap()));
        g.entry(REGISTRY.into())
            .or_default()
            .extend(named.into_iter().filter(|m| m != REGISTRY));
    }
    g
}

/// The nevers: primitives use only primitives; the labs' own libraries only primitives; the
/// engines (grader, trace, walkthrough, kits, packaging, doctor) neither the registry nor a
/// lab's code; the reference programs only primitives and their lab's library; no module of
/// the crate is reachable from itself. Every module is in exactly one layer.
#[test]
fn course_module_dependencies_keep_the_nevers() {
    let g = module_graph();
    for m in g.keys() {
        let layers = [
            PRIMITIVES.contains(&m.as_str()),
            LAB_LIBRARIES.contains(&m.as_str()),
            ENGINES.contains(&m.as_str()),
            m == REGISTRY,
        ];
        assert_eq!(
            layers.iter().filter(|x| **x).count(),
            1,
            "src/{m}: put it in one layer of tests/course.rs"
        );
    }
    for (m, uses) in &g {
        for u in uses {
            let ok = if PRIMITIVES.contains(&m.as_str()) {
                PRIMITIVES.contains(&u.as_str())
            } else if LAB_LIBRARIES.contains(&m.as_str()) {
                PRIMITIVES.contains(&u.as_str()) || LAB_LIBRARIES.contains(&u.as_str())
            } else if ENGINES.contains(&m.as_str()) {
                PRIMITIVES.contains(&u.as_str()) || ENGINES.contains(&u.as_str())
            } else {
                true
            };
            assert!(ok, "src/{m} uses crate::{u}: a never is broken");
        }
    }
    // No cycle: a depth-first walk never comes back to a module on its path.
    fn visit(
        g: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        m: &str,
        path: &mut Vec<String>,
    ) {
        assert!(
            !path.iter().any(|p| p == m),
            "import cycle: {} -> {m}",
            path.join(" -> ")
        );
        path.push(m.to_string());
        for u in g.get(m).into_iter().flatten() {
            visit(g, u, path);
        }
        path.pop();
    }
    for m in g.keys() {
        visit(&g, m, &mut Vec::new());
    }
    for (name, path) in cargo_bins() {
        if name == "ipclab" {
            continue;
        }
        let named = modules_named(&code_of(
            &std::fs::read_to_string(root().join(&path)).unwrap(),
        ));
        for u in named {
            assert!(
                PRIMITIVES.contains(&u.as_str()) || LAB_LIBRARIES.contains(&u.as_str()),
                "{path} uses ipclab::{u}: a reference program uses primitives only"
            );
        }
    }
}

/// The engines name no lab: no `labN` and no lab number compared in their code (the
/// registry's entries carry what differs).
#[test]
fn course_engines_name_no_lab() {
    let named = regex::Regex::new(r"\blab[0-9]+\b|number == [0-9]").unwrap();
    let literal = regex::Regex::new(r#""([^"\\]|\\.)*""#).unwrap();
    for m in ENGINES {
        let p = root().join("src").join(m);
        let files = if p.is_dir() {
            rust_files(&p)
        } else {
            vec![p.with_extension("rs")]
        };
        for f in files {
            let code = code_of(&std::fs::read_to_string(&f).unwrap());
            // String literals may name a lab (`"lab{n}"` formats do not).
            let code = literal.replace_all(&code, "\"\"");
            if let Some(m) = named.find(&code) {
                panic!("{}: names a lab ({})", f.display(), m.as_str());
            }
        }
    }
}

/// Everything else follows the registry: one folder per entry (each with its kits' solutions
/// among its fixtures), the README's lab table, the Makefile's pattern rules (no lab listed by
/// hand), the `.ci/run` leftover list (every reference program), a CI budget per lab.
#[test]
fn course_makefile_readme_and_ci_follow_the_registry() {
    let dirs: Vec<&str> = ipclab::labs::ALL.iter().map(|l| l.dir()).collect();
    let mut folders: Vec<String> = std::fs::read_dir(root().join("labs"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort_by_key(|d| ipclab::spec::number_of(d));
    assert_eq!(dirs, folders, "src/labs.rs and labs/* disagree");
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    let tests: Vec<String> = std::fs::read_dir(root().join("tests"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".rs"))
                .map(String::from)
        })
        .collect();
    for l in ipclab::labs::ALL {
        let s = l.spec().unwrap();
        let n = s.lab.number;
        let row = readme.lines().find(|r| r.starts_with(&format!("| {n} |")));
        let row = row.unwrap_or_else(|| panic!("README.md: no row `| {n} |` in the lab table"));
        assert!(
            row.contains(&format!("(labs/{}/README.md)", l.dir())),
            "{row}"
        );
        for b in &s.lab.binaries {
            assert!(
                row.contains(&format!("`{b}`")),
                "README.md lab {n}: `{b}` missing"
            );
        }
        for b in &s.lab.binaries {
            // ps shows the first 15 characters of a name.
            let comm: String = b.chars().take(15).collect();
            assert!(
                ["|", "(", ")"].iter().any(|a| ["|", ")"]
                    .iter()
                    .any(|z| ci.contains(&format!("{a}{comm}{z}")))),
                ".ci/run: its leftover list misses {comm}"
            );
        }
        assert!(
            !s.ci.is_empty(),
            "labs/{}/spec.toml: no [ci] budget",
            l.dir()
        );
        for t in s.ci.keys() {
            assert!(
                tests.contains(t),
                "labs/{}/spec.toml [ci]: no tests/{t}.rs",
                l.dir()
            );
        }
        let kits = root().join("labs").join(l.dir()).join("kits");
        for lang in ["python", "c", "rust"] {
            let fills = root()
                .join("labs")
                .join(l.dir())
                .join(format!("fixtures/kit-{lang}.fills"));
            assert_eq!(
                kits.join(lang).is_dir(),
                fills.is_file(),
                "labs/{}: kits/{lang} and fixtures/kit-{lang}.fills go together",
                l.dir()
            );
        }
    }
    let makefile = std::fs::read_to_string(root().join("Makefile")).unwrap();
    // Outside comments and recipes; a benchmark is named by what it measures (bench-lab4).
    let word = regex::Regex::new(r"\blab[0-9]+\b").unwrap();
    for line in makefile.lines() {
        if line.starts_with('#') || line.starts_with('\t') {
            continue;
        }
        for m in word.find_iter(line) {
            assert!(
                line[..m.start()].ends_with("bench-"),
                "Makefile: {} is listed by hand: {line}",
                m.as_str()
            );
        }
    }
}

/// The harness is split by concern (box start, tree tracking, object watching, output
/// capture): none of its functions is longer than about 150 lines (rustfmt's layout).
#[test]
fn course_harness_functions_are_short() {
    let start = regex::Regex::new(r"^(\s*)(pub(\([a-z]+\))? )?fn (\w+)").unwrap();
    for f in rust_files(&root().join("src/grade/harness")) {
        let text = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let Some(c) = start.captures(l) else { continue };
            if l.trim_end().ends_with(';') {
                continue;
            }
            let close = format!("{}}}", &c[1]);
            let len = lines[i..].iter().position(|x| *x == close).unwrap_or(0) + 1;
            assert!(len <= 160, "{}: fn {} is {len} lines", f.display(), &c[4]);
        }
    }
}
