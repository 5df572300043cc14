//! `ipclab new N --lang python|c|rust`: a student's starter for lab N. The program comes with
//! the contract's argument parsing done and a `TODO(labN.k)` stub at each place the student
//! works; a stub not yet replaced stops the program with `TODO(labN.k) not done: ...` on stderr,
//! which the grader quotes — so a fresh kit fails with a message pointing at its first TODO.
//! Kits hold no solutions (the tests keep theirs as labs/labN-name/fixtures/kit-LANG.fills).

use crate::error::{Error, Result};
use regex::Regex;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Python,
    C,
    Rust,
}

impl Lang {
    fn name(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::C => "c",
            Lang::Rust => "rust",
        }
    }
}

pub struct Kit {
    pub lab: u32,
    pub lang: Lang,
    /// (path in the kit, template): `labs/labN-name/kits/<lang>/**`, embedded by build.rs.
    pub files: Vec<(&'static str, &'static str)>,
}

/// Every kit the labs ship, in lab then language order.
pub fn kits() -> Vec<Kit> {
    let mut v = Vec::new();
    for dir in crate::spec::dirs() {
        for lang in [Lang::Python, Lang::C, Lang::Rust] {
            let prefix = format!("{dir}/kits/{}/", lang.name());
            let files: Vec<(&str, &str)> = crate::spec::FILES
                .iter()
                .filter_map(|(p, t)| p.strip_prefix(prefix.as_str()).map(|r| (r, *t)))
                .collect();
            if !files.is_empty() {
                v.push(Kit {
                    lab: crate::spec::number_of(dir),
                    lang,
                    files,
                });
            }
        }
    }
    v
}

/// A TODO line: `TODO(lab2.1): what | fr: quoi`.
static TODO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"TODO\((lab\d+\.\d+)\): (.*?)(?: \| fr: (.*?))?(?: \*/)?$").expect("regex")
});

/// The TODOs of a template: (tag, English, French).
pub fn todos(template: &str) -> Vec<(String, String, String)> {
    template
        .lines()
        .filter_map(|l| TODO.captures(l))
        .map(|c| {
            (
                c[1].to_string(),
                c[2].trim().to_string(),
                c.get(3)
                    .map_or(c[2].trim(), |m| m.as_str().trim())
                    .to_string(),
            )
        })
        .collect()
}

/// The program as the student gets it: the French half of each TODO line dropped.
fn strip(template: &str) -> String {
    let mut out: String = template
        .lines()
        .map(|l| match l.find(" | fr: ") {
            // A C comment keeps its end.
            Some(i) if TODO.is_match(l) && l.trim_end().ends_with("*/") => {
                format!("{} */", &l[..i])
            }
            Some(i) if TODO.is_match(l) => l[..i].to_string(),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

fn grade_cmd(lab: u32, lang: Lang) -> String {
    match lang {
        Lang::Python => "/usr/bin/python3 main.py".into(),
        Lang::C => "./main".into(),
        Lang::Rust => format!("target/release/lab{lab}"),
    }
}

/// The kit's Makefile. `ipclab` is named by the absolute path of the one that made the kit, so
/// `make grade` works wherever the kit is, with nothing on PATH; `IPCLAB=...` overrides it.
fn makefile(lab: u32, lang: Lang, ipclab: &str) -> String {
    let head = format!(
        "# `make grade` grades this program; `make text` prints the lab's text (make text LANG=fr).\n# ipclab is the one that made this kit; another: make grade IPCLAB=/path/to/ipclab\nIPCLAB ?= {ipclab}\n"
    );
    let cmd = grade_cmd(lab, lang);
    let text = format!("text:\n\t@\"$(IPCLAB)\" lab {lab} --text\n\n");
    match lang {
        Lang::Python => format!("{head}\ngrade:\n\t\"$(IPCLAB)\" grade {lab} --impl \"{cmd}\"\n\n{text}.PHONY: grade text\n"),
        Lang::C => format!(
            "{head}CC ?= cc\n\nmain: main.c\n\t$(CC) -O2 -Wall -pthread -o main main.c\n\ngrade: main\n\t\"$(IPCLAB)\" grade {lab} --impl {cmd}\n\n{text}.PHONY: grade text\n"
        ),
        Lang::Rust => format!(
            "{head}\ngrade:\n\tcargo build --release\n\t\"$(IPCLAB)\" grade {lab} --impl {cmd}\n\n{text}.PHONY: grade text\n"
        ),
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
}

/// The running ipclab's absolute path, as a Makefile can hold it.
fn own_path() -> Result<String> {
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|e| Error::io(&e, "readlink", "/proc/self/exe"))?;
    let s = exe.display().to_string();
    if s.contains(['$', '"', '\n', '#']) {
        return Err(Error::runtime(format!(
            "{s}: a path a Makefile cannot hold; move ipclab"
        )));
    }
    Ok(s)
}

fn readme(
    lab: u32,
    lang: Lang,
    title: &str,
    todos: &[(String, String, String)],
    fr: bool,
) -> String {
    let list: Vec<String> = todos
        .iter()
        .map(|(t, en, f)| format!("- `TODO({t})`: {}", if fr { f } else { en }))
        .collect();
    if fr {
        format!(
            "# TP {lab} — point de départ ({lang})\n\n{}.\n\nLe sujet : `make text LANG=fr` l'affiche (`ipclab lab {lab} --text --lang fr` ; `ipclab lab {lab}` le déroule pas à pas).\nLe contrat de correction est à la fin de ce texte : les arguments sont déjà lus ici.\n\nÀ faire, dans l'ordre (chacun non fait arrête le programme en disant lequel) :\n\n{}\n\nCorriger : `make grade` (ou `ipclab grade {lab} --impl \"{}\"`).\n",
            capitalized(title),
            list.join("\n"),
            grade_cmd(lab, lang),
            lang = lang.name()
        )
    } else {
        format!(
            "# Lab {lab} — starter ({lang})\n\n{title}.\n\nThe lab text: `make text` prints it (`ipclab lab {lab} --text`; `ipclab lab {lab}` walks you through it).\nIts grading contract is at the end: the arguments are already parsed here.\n\nTo do, in order (each one not done stops the program and says which):\n\n{}\n\nGrade: `make grade` (or `ipclab grade {lab} --impl \"{}\"`).\n",
            list.join("\n"),
            grade_cmd(lab, lang),
            lang = lang.name()
        )
    }
}

pub fn new(lab: u32, lang: Lang, dir: Option<PathBuf>) -> Result<i32> {
    let spec = crate::spec::find(lab)?;
    let kits = kits();
    let Some(kit) = kits.iter().find(|k| k.lab == lab && k.lang == lang) else {
        let have: Vec<String> = kits
            .iter()
            .map(|k| format!("{} {}", k.lab, k.lang.name()))
            .collect();
        return Err(Error::usage(format!(
            "no starter for lab {lab} in {} yet; there are: {}",
            lang.name(),
            have.join(", ")
        )));
    };
    let dir = dir.unwrap_or_else(|| PathBuf::from(format!("lab{lab}-{}", lang.name())));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .map(|mut r| r.next().is_some())
            .unwrap_or(true)
    {
        return Err(Error::usage(format!(
            "{}: exists and is not empty; give another --dir",
            dir.display()
        )));
    }
    let mut all_todos = Vec::new();
    for (_, t) in &kit.files {
        all_todos.extend(todos(t));
    }
    // In the order to do them: lab2.1, lab2.2, ... (not the order they appear in the file).
    let key = |t: &str| {
        t.rsplit('.')
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    };
    all_todos.sort_by_key(|(t, _, _)| key(t));
    let mut files: Vec<(PathBuf, String)> = kit
        .files
        .iter()
        .map(|(p, t)| (dir.join(p), strip(t)))
        .collect();
    files.push((dir.join("Makefile"), makefile(lab, lang, &own_path()?)));
    // The French title is the French text's own heading ("# TP 2 — ping-pong ...").
    let title_fr = crate::spec::file(&spec.dir_name(), "README.fr.md")
        .and_then(|t| t.lines().next())
        .and_then(|h| h.split_once(" — "))
        .map_or(spec.lab.title.clone(), |(_, t)| t.trim().to_string());
    for (fr, title) in [(false, &spec.lab.title), (true, &title_fr)] {
        files.push((
            dir.join(if fr { "README.fr.md" } else { "README.md" }),
            readme(lab, lang, title, &all_todos, fr),
        ));
    }
    write_all(&dir, &files)?;
    println!(
        "wrote {} ({} TODOs); next: cd {} && make grade",
        dir.display(),
        all_todos.len(),
        dir.display()
    );
    Ok(0)
}

/// Writes every file, or none: on failure what was created is removed again.
fn write_all(dir: &Path, files: &[(PathBuf, String)]) -> Result<()> {
    let existed = dir.exists();
    let r = (|| {
        for (p, text) in files {
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io(&e, "mkdir", parent.display()))?;
            }
            std::fs::write(p, text).map_err(|e| Error::io(&e, "write", p.display()))?;
            if p.extension().is_some_and(|x| x == "py") {
                let _ = std::fs::set_permissions(
                    p,
                    std::os::unix::fs::PermissionsExt::from_mode(0o755),
                );
            }
        }
        Ok(())
    })();
    if r.is_err() && !existed {
        let _ = std::fs::remove_dir_all(dir);
    }
    r
}

/// Replaces each TODO block (from its `TODO(tag)` line to its `END TODO(tag)` line) with the
/// fill for that tag. Used by the tests with the solutions kept under tests/kits/.
pub fn fill(program: &str, fills: &str) -> std::result::Result<String, String> {
    let mut blocks: Vec<(String, String)> = Vec::new();
    for part in fills.split("=== ").filter(|p| !p.trim().is_empty()) {
        let (tag, body) = part.split_once('\n').ok_or("a fill without a body")?;
        blocks.push((
            tag.trim().to_string(),
            body.trim_end_matches('\n').to_string(),
        ));
    }
    let mut out = Vec::new();
    let mut skipping: Option<String> = None;
    for line in program.lines() {
        if let Some(tag) = &skipping {
            if line.contains(&format!("END TODO({tag})")) {
                skipping = None;
            }
            continue;
        }
        if let Some(c) = TODO.captures(line) {
            let tag = c[1].to_string();
            let body = blocks
                .iter()
                .find(|(t, _)| *t == tag)
                .map(|(_, b)| b.clone())
                .ok_or(format!("no fill for TODO({tag})"))?;
            out.push(body);
            skipping = Some(tag);
            continue;
        }
        out.push(line.to_string());
    }
    if let Some(tag) = skipping {
        return Err(format!("TODO({tag}) has no END TODO({tag}) line"));
    }
    Ok(out.join("\n") + "\n")
}
