//! Embeds every lab's shipped files (`labs/*/`: spec.toml, READMEs, strace.expected, kits/**) as
//! one table, so no list of labs or files is kept by hand. The lab's code (`*.rs`) is compiled
//! through the registry (src/labs.rs), its fixtures stay on disk for the tests.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if p.is_dir() {
            // Fixtures and solutions are test data, not part of the toolkit.
            if name != "fixtures" {
                walk(&p, out);
            }
        } else if !name.ends_with(".rs") || p.components().any(|c| c.as_os_str() == "kits") {
            out.push(p);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let labs = root.join("labs");
    println!("cargo:rerun-if-changed=labs");
    let mut files = Vec::new();
    walk(&labs, &mut files);
    files.sort();
    let mut src = String::from(
        "/// Every file the labs ship, as (path under labs/, text), sorted by path.\n\
         pub static FILES: &[(&str, &str)] = &[\n",
    );
    for f in &files {
        let rel = f
            .strip_prefix(&labs)
            .expect("under labs/")
            .display()
            .to_string();
        writeln!(
            src,
            "    ({rel:?}, include_str!({:?})),",
            f.display().to_string()
        )
        .expect("string");
    }
    src.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("lab_files.rs");
    std::fs::write(out, src).expect("write OUT_DIR/lab_files.rs");
}
