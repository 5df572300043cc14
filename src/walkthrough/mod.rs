//! Narrated walkthroughs (`ipclab lab N`, `make labN`): each step says what it does, runs the
//! reference programs as real processes, shows the evidence (`ps`, `ls -l`, strace lines), and
//! the walkthrough ends by checking that it left nothing behind.
//!
//! The walkthrough makes itself a child subreaper, so every orphan its demos create is re-parented
//! to it and reaped here rather than lingering under PID 1.

use crate::error::{Error, Result};
use crate::{inspect, process, spec};
use std::io::{BufRead, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

pub mod stop;

/// A program that prints nothing for this long is considered stuck (safety net only).
const STUCK: Duration = Duration::from_secs(30);

/// A lab as `ipclab lab N` sees it: its narrated steps (and its trace, for the closing chart).
pub trait Walkable: crate::trace::Traceable {
    fn walk(&self, w: &mut Walk) -> Result<()>;
    /// The walkthrough has steps on other machines, run with `--hosts FILE` (ssh to them).
    fn uses_hosts(&self) -> bool {
        false
    }
}

/// English or French by the walkthrough's language: `tr!(w, "en", "fr")`. Every string a
/// walkthrough prints for the student goes through it, so both languages say the same.
#[macro_export]
macro_rules! tr {
    ($w:expr, $en:expr, $fr:expr) => {
        if $w.fr() {
            $fr
        } else {
            $en
        }
    };
}

/// A copy of the walkthrough's language, for `tr!` inside calls that borrow the walk.
#[derive(Clone, Copy)]
pub struct Lang(bool);

impl Lang {
    pub fn fr(&self) -> bool {
        self.0
    }
}

/// The running walkthrough's language, for what prints without a `Walk` at hand.
pub fn fr() -> bool {
    crate::lang::fr()
}

pub struct Walk {
    pub spec: spec::Spec,
    lang: crate::lang::Lang,
    lab: &'static dyn Walkable,
    step_mode: bool,
    bins: PathBuf,
    step_no: u32,
    shm_before: Vec<String>,
    problems: Vec<String>,
    /// What the last `shell` reaped of its adopted descendants: (pid, status).
    pub adopted: Vec<(i32, i32)>,
    /// The machines of `--hosts FILE`, for the steps on other machines (over ssh).
    pub hosts: Option<Vec<String>>,
}

/// Runs `lab`'s walkthrough. Exit status: 0 when every expectation held and the run left
/// nothing behind, 1 otherwise.
pub fn run(
    lab: &'static dyn Walkable,
    step_mode: bool,
    lang: crate::lang::Lang,
    hosts: Option<&Path>,
) -> Result<i32> {
    let spec = lab.spec()?;
    let hosts = match hosts {
        None => None,
        Some(_) if !lab.uses_hosts() => {
            return Err(Error::usage(format!(
                "lab {} has no steps on other machines: run it without --hosts",
                spec.lab.number
            )))
        }
        Some(f) => Some(crate::hosts::read_machine_file(f)?),
    };
    let exe = std::env::current_exe().map_err(|e| Error::io(&e, "readlink", "/proc/self/exe"))?;
    let bins = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    for b in &spec.lab.binaries {
        if !bins.join(b).exists() {
            return Err(Error::runtime(format!(
                "{} not found beside ipclab: build it first (cargo build --bins)",
                b
            ))
            .with_code(3));
        }
    }
    let shm_before = our_shm();
    let _scratch = stop::arm(shm_before.clone())?;
    process::set_child_subreaper()?;
    crate::lang::set(lang);
    let mut walk = Walk {
        shm_before,
        lang,
        spec,
        lab,
        step_mode,
        bins,
        step_no: 0,
        problems: Vec::new(),
        adopted: Vec::new(),
        hosts,
    };
    if walk.fr() {
        // The French title is the French text's own heading.
        let title = spec::file(&walk.spec.dir_name(), "README.fr.md")
            .and_then(|t| t.lines().next())
            .and_then(|h| h.split_once(" — "))
            .map_or(walk.spec.lab.title.clone(), |(_, t)| t.trim().to_string());
        println!("# TP {} : {title}", walk.spec.lab.number);
    } else {
        println!("# Lab {}: {}", walk.spec.lab.number, walk.spec.lab.title);
    }
    let qs = tr!(walk, &walk.spec.lab.questions, &walk.spec.lab.questions_fr).clone();
    for q in qs {
        println!("#   {q}");
    }
    let outcome = lab.walk(&mut walk);
    if let Err(e) = outcome {
        walk.problems.push(e.to_string());
    }
    if walk.hosts.is_some() {
        walk.not_made_there();
    }
    walk.finish()
}

/// Prints a text as is (a closed stdout ends the process quietly, exit 1: `ipclab lab 2 --text | head`).
pub fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    if o.write_all(text.as_bytes())
        .and_then(|_| o.flush())
        .is_err()
    {
        std::process::exit(1);
    }
}

/// This user's shm objects of every ipclab family (`ipclab-UID-`, `ipclab-data-UID-`...).
fn our_shm() -> Vec<String> {
    crate::shm::ours("ipclab")
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

impl Walk {
    /// The walkthrough speaks French (`--lang fr`, or LANG=fr_*).
    pub fn fr(&self) -> bool {
        self.lang == crate::lang::Lang::Fr
    }

    /// For `tr!` where the walk is mutably borrowed.
    pub fn lang(&self) -> Lang {
        Lang(self.fr())
    }

    /// Where a chart the student opens goes: target/ of the checkout they run it in, else the
    /// current directory, else their home; never a temporary directory that outlives nothing.
    pub fn chart_path(&self, name: &str) -> Result<PathBuf> {
        let writable =
            |d: &Path| std::fs::create_dir_all(d).is_ok() && tempfile::tempfile_in(d).is_ok();
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let dir = [Some(PathBuf::from("target")), Some(".".into()), home]
            .into_iter()
            .flatten()
            .find(|d| writable(d))
            .ok_or_else(|| {
                Error::runtime(tr!(
                    self,
                    format!("nowhere to write {name}: target/, the current directory and HOME are read-only"),
                    format!("nulle part où écrire {name} : target/, le répertoire courant et HOME sont en lecture seule")
                ))
            })?;
        Ok(std::fs::canonicalize(&dir).unwrap_or(dir).join(name))
    }

    /// Path of a reference binary.
    pub fn bin(&self, name: &str) -> String {
        self.bins.join(name).display().to_string()
    }

    /// Starts step k with its title. With --step, first pauses: the previous step's
    /// explanation and output are on the screen, and the student goes on when ready.
    pub fn step(&mut self, title: &str) {
        if self.step_no > 0 {
            self.pause(tr!(self, "end of this step", "fin de cette étape"));
        }
        self.step_no += 1;
        println!(
            "\n== {} {} : {title} ==",
            tr!(self, "Step", "Étape"),
            self.step_no
        );
    }

    /// With --step, waits for Enter while `what` (the state just described: a zombie, a daemon,
    /// stopped servers) is live, so the student can look at it from another terminal.
    pub fn pause(&self, what: &str) {
        if !self.step_mode {
            return;
        }
        print!(
            "   ⏸ {what} — {} ",
            tr!(self, "Enter to go on", "Entrée pour continuer")
        );
        std::io::stdout().flush().ok();
        let _ = std::io::stdin().lock().read_line(&mut String::new());
    }

    /// Prose for the student, wrapped as written.
    pub fn say(&self, text: &str) {
        for line in text.lines() {
            println!("   {}", line.trim_start());
        }
    }

    /// Records a broken expectation: the walkthrough still goes on, and exits 1 at the end.
    pub fn expect(&mut self, ok: bool, what: &str) {
        if ok {
            println!("   ✓ {what}");
        } else {
            println!("   ✗ {what}");
            self.problems.push(what.to_string());
        }
    }

    /// Runs a command to the end, stdout and stderr merged as on a terminal; returns
    /// (exit status, output).
    pub fn shell(&mut self, argv: &[&str]) -> Result<(i32, String)> {
        let live = self.spawn(argv)?;
        let out = live.finish()?;
        self.adopted = self.reap_adopted();
        Ok(out)
    }

    /// Starts a command whose stdin we hold, to observe it while it runs.
    pub fn spawn(&self, argv: &[&str]) -> Result<Live> {
        stop::check();
        println!("   $ {}", display_cmd(argv));
        let (reader, writer) = std::io::pipe().map_err(|e| Error::io(&e, "pipe", ""))?;
        let w2 = writer
            .try_clone()
            .map_err(|e| Error::io(&e, "dup", "pipe"))?;
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(w2)
            .stderr(writer);
        let mut child = {
            let _starting = process::spawning();
            cmd.spawn().map_err(|e| Error::io(&e, "exec", argv[0]))?
        };
        // The Command's copies of the write end must go, or we would never read end of file.
        drop(cmd);
        let stdin = child.stdin.take();
        if let Ok(mut h) = HELD.lock() {
            h.push(child.id() as i32);
        }
        Ok(Live {
            child,
            stdin,
            reader,
            buf: Vec::new(),
            text: String::new(),
            echo: true,
        })
    }

    /// `ps -o pid,ppid,stat,comm -p PIDS`, as the student would type it.
    pub fn ps(&mut self, pids: &[i32]) {
        let list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
        let argv = ["ps", "-o", "pid,ppid,stat,comm", "-p", &list.join(",")];
        if Command::new("ps").arg("--version").output().is_ok() {
            let _ = self.shell(&argv);
        } else {
            println!(
                "   {}",
                tr!(
                    self,
                    "(ps not installed; the same from /proc:)",
                    "(ps n'est pas installé ; la même chose depuis /proc :)"
                )
            );
            println!("   {}", inspect::HEADER);
            for p in pids.iter().filter_map(|p| inspect::info(*p)) {
                println!("   {}", p.row());
            }
        }
        // The same processes in their tree (`ipclab ps`), under this walkthrough.
        println!(
            "   {} (ipclab ps {}) :",
            tr!(self, "tree", "arbre"),
            std::process::id()
        );
        for l in inspect::tree(std::process::id() as i32, pids, inspect::color_wanted()) {
            println!("   | {l}");
        }
    }

    /// Reaps whatever was re-parented to us and has exited, saying so: (pid, shell-style status).
    /// Commands still held as `Live` are left alone: their status is for their `finish`.
    pub fn reap_adopted(&self) -> Vec<(i32, i32)> {
        let held = HELD.lock().map(|h| h.clone()).unwrap_or_default();
        let reaped: Vec<_> = inspect::children(std::process::id() as i32)
            .into_iter()
            .filter(|c| c.state == 'Z' && !held.contains(&c.pid))
            .filter_map(|c| {
                let pid = nix::unistd::Pid::from_raw(c.pid);
                match nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                    Ok(st) if st.pid().is_some() => Some((pid, st)),
                    _ => None,
                }
            })
            .collect();
        for (pid, st) in &reaped {
            println!(
                "   {} {pid} : {})",
                tr!(
                    self,
                    "(walkthrough, a subreaper, reaped adopted",
                    "(le déroulé, subreaper, a récupéré l'adopté"
                ),
                process::describe(st)
            );
        }
        reaped
            .iter()
            .map(|(p, st)| (p.as_raw(), process::shell_status(st)))
            .collect()
    }

    /// Waits (10 s at most) for adopted processes that are still exiting, and reaps them; what
    /// is still running then is a real leftover: reported, killed, reaped.
    pub fn settle(&mut self) {
        let (reaped, running) = process::reap_children_within(Duration::from_secs(10));
        for (pid, st) in &reaped {
            println!(
                "   {} {pid} : {})",
                tr!(
                    self,
                    "(walkthrough, a subreaper, reaped adopted",
                    "(le déroulé, subreaper, a récupéré l'adopté"
                ),
                process::describe(st)
            );
        }
        for pid in running {
            self.problems.push(tr!(
                self,
                format!("process {pid} was still running: killed, with its descendants"),
                format!("le processus {pid} tournait encore : tué, avec ses descendants")
            ));
            for p in inspect::descendants(pid.as_raw()) {
                let _ = process::signal(
                    nix::unistd::Pid::from_raw(p.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = process::signal(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = process::wait_for(pid);
        }
        // Orphans of what was just killed are ours now: reap them too.
        let _ = process::reap_children_within(Duration::from_secs(5));
    }

    /// Runs `argv` under `strace -f -qq` with `filters` (each an `-e` argument), says whether
    /// it succeeded, and returns its log, merged (`merge_resumed`); None, with the reason said,
    /// where strace is missing or ptrace is not allowed.
    fn traced(&mut self, argv: &[&str], filters: &[&str]) -> Result<Option<Vec<String>>> {
        if let Err(why) = crate::trace::strace_usable() {
            self.say(&format!(
                "({} {why})",
                tr!(self, "strace skipped:", "strace sauté :")
            ));
            return Ok(None);
        }
        let out =
            tempfile::NamedTempFile::new().map_err(|e| Error::io(&e, "create", "strace log"))?;
        let log = out.path().display().to_string();
        let mut full = vec!["strace", "-f", "-qq"];
        for f in filters {
            full.extend(["-e", f]);
        }
        full.extend(["-o", &log]);
        full.extend_from_slice(argv);
        let (code, _) = self.shell(&full)?;
        let text = std::fs::read_to_string(out.path()).unwrap_or_default();
        self.expect(
            code == 0,
            tr!(
                self,
                "the traced run succeeded",
                "l'exécution tracée a réussi"
            ),
        );
        Ok(Some(merge_resumed(&text)))
    }

    /// Runs `argv` under strace and prints the lines of this lab's syscalls that concern it.
    pub fn strace(&mut self, argv: &[&str], dir: Option<&Path>) -> Result<()> {
        let filter = self.spec.lab.strace_filter.join(",");
        let Some(lines) = self.traced(argv, &[&filter, "signal=none"])? else {
            return Ok(());
        };
        let dir_s = dir.map(|d| d.display().to_string());
        println!(
            "   {}",
            tr!(
                self,
                "strace, the lines that matter:",
                "strace, les lignes qui comptent :"
            )
        );
        let shown: Vec<&String> = lines
            .iter()
            .filter(|l| interesting(l, dir_s.as_deref()))
            .collect();
        for line in shown.iter().take(40) {
            let line = match &dir_s {
                Some(d) => line.replace(d.as_str(), "DIR"),
                None => line.to_string(),
            };
            println!("   | {}", truncate(&line, 150));
        }
        if shown.len() > 40 {
            println!("   | ...");
        }
        Ok(())
    }

    /// Runs `argv` under strace for the `syscalls` given and prints only the lines naming
    /// `about` (a path): the one fact a step shows.
    pub fn strace_only(&mut self, argv: &[&str], syscalls: &str, about: &str) -> Result<()> {
        let Some(lines) = self.traced(argv, &[syscalls])? else {
            return Ok(());
        };
        println!(
            "   {} {about} :",
            tr!(
                self,
                "strace, the lines naming",
                "strace, les lignes qui nomment"
            )
        );
        for line in lines.iter().filter(|l| l.contains(about)) {
            println!("   | {}", truncate(line, 150));
        }
        Ok(())
    }

    /// The lab's reference traced once more, shown as a sequence chart in text (after the
    /// clean-up check: the trace's own processes cannot hide a leftover of the walkthrough).
    fn chart(&mut self) {
        println!(
            "\n== {} (`make strace-lab{}` {}) ==",
            tr!(
                self,
                "The run as a sequence chart",
                "L'exécution en diagramme de séquence"
            ),
            self.spec.lab.number,
            tr!(self, "for the whole trace", "pour toute la trace")
        );
        if let Err(why) = crate::trace::strace_usable() {
            println!("   ({} {why})", tr!(self, "skipped:", "sauté :"));
            return;
        }
        let o = crate::trace::Options {
            lab: self.spec.lab.number,
            impl_cmd: None,
            set: Vec::new(),
            raw: false,
            svg: None,
            check: false,
            chart: true,
            quiet: true,
            out_dir: PathBuf::from("target/trace"),
        };
        // Where target/ is not ours to write (another user's checkout), a private directory.
        let scratch = tempfile::tempdir().ok();
        let writable = std::fs::create_dir_all(&o.out_dir).is_ok()
            && tempfile::tempfile_in(&o.out_dir).is_ok();
        let o = match (&scratch, writable) {
            (Some(d), false) => crate::trace::Options {
                out_dir: d.path().to_path_buf(),
                ..o
            },
            _ => o,
        };
        if let Err(e) = crate::trace::trace(&o, self.lab) {
            self.problems.push(tr!(
                self,
                format!("the traced run failed: {e}"),
                format!("l'exécution tracée a échoué : {e}")
            ));
        }
    }

    /// After steps on other machines: which of the grading contract's checks were not made
    /// there, and why (the grader judges a program in a box of this machine).
    fn not_made_there(&self) {
        let Some(c) = &self.spec.contract else {
            return;
        };
        let names: Vec<&str> = c.points.keys().map(String::as_str).collect();
        println!(
            "\n== {} ==",
            tr!(
                self,
                "Not checked on the other machines",
                "Non vérifié sur les autres machines"
            )
        );
        let n = self.spec.lab.number;
        self.say(&tr!(
            self,
            format!(
                "The grading contract's {} checks ({}) judge a program by its process tree, uids,
                 sockets and files in a box of the grading machine, which ssh to another machine
                 cannot give: none was made there. Grade with ipclab grade {n} on this machine
                 (local processes) or on namespace hosts (ipclab hosts up, as root).",
                names.len(),
                names.join(", ")
            ),
            format!(
                "Les {} vérifications du contrat de notation ({}) jugent un programme par son
                 arbre de processus, ses uid, ses sockets et ses fichiers, dans une boîte de la
                 machine qui note, ce que ssh vers une autre machine ne peut donner : aucune n'a
                 été faite là-bas. Notez avec ipclab grade {n} sur cette machine (processus
                 locaux) ou sur des machines d'espaces de noms (ipclab hosts up, en root).",
                names.len(),
                names.join(", ")
            )
        ));
    }

    fn finish(mut self) -> Result<i32> {
        self.pause(tr!(
            self,
            "end of the last step",
            "fin de la dernière étape"
        ));
        stop::check();
        println!(
            "\n== {} ==",
            tr!(self, "Clean-up check", "Vérification du ménage")
        );
        self.settle();
        let me = std::process::id() as i32;
        let left = inspect::descendants(me);
        let rows: Vec<String> = left.iter().map(|p| p.row()).collect();
        self.expect(
            left.is_empty(),
            &format!(
                "{}{}",
                tr!(
                    self,
                    "no process of ours left",
                    "aucun de nos processus ne reste"
                ),
                list(&rows)
            ),
        );
        // Scoped to this walkthrough: an object whose creator still runs and is not us belongs to
        // another run of this user (none of our processes is left, as just checked).
        let new: Vec<String> = crate::shm::ours("ipclab")
            .into_iter()
            .filter(|(n, pid)| {
                !self.shm_before.contains(n)
                    && (*pid == me || inspect::info(*pid).is_none_or(|i| i.is_zombie()))
            })
            .map(|(n, _)| n)
            .collect();
        self.expect(
            new.is_empty(),
            &format!(
                "{}{}",
                tr!(
                    self,
                    "no new /dev/shm object",
                    "aucun nouvel objet dans /dev/shm"
                ),
                list(&new)
            ),
        );
        self.chart();
        if self.problems.is_empty() {
            println!(
                "{}",
                tr!(
                    self,
                    format!(
                        "\nLab {} walkthrough: all steps behaved as described.",
                        self.spec.lab.number
                    ),
                    format!(
                        "\nDéroulé du TP {} : toutes les étapes se sont passées comme décrit.",
                        self.spec.lab.number
                    )
                )
            );
            Ok(0)
        } else {
            println!(
                "{}",
                tr!(
                    self,
                    format!(
                        "\nLab {} walkthrough: {} problem(s):",
                        self.spec.lab.number,
                        self.problems.len()
                    ),
                    format!(
                        "\nDéroulé du TP {} : {} problème(s) :",
                        self.spec.lab.number,
                        self.problems.len()
                    )
                )
            );
            for p in &self.problems {
                println!("  - {p}");
            }
            Ok(1)
        }
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!(": {}", items.join("; "))
    }
}

/// strace -f lines with each `<unfinished ...>` call joined to its `<... NAME resumed>` end, so
/// no orphan half is shown: "PID read(3, <unfinished ...>" + "PID <... read resumed>"x", 1) = 1"
/// become "PID read(3, "x", 1) = 1".
fn merge_resumed(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut open: std::collections::BTreeMap<String, usize> = Default::default();
    for line in text.lines() {
        let pid = line.split_whitespace().next().unwrap_or("").to_string();
        if let Some(head) = line.strip_suffix(" <unfinished ...>") {
            open.insert(pid, out.len());
            out.push(head.to_string());
        } else if let Some(i) = line.find("<... ") {
            let rest = &line[i..];
            let tail = rest.find(" resumed>").map(|j| &rest[j + 9..]);
            // A resumed half whose start we never saw is dropped: it would mislead.
            if let (Some(k), Some(t)) = (open.remove(&pid), tail) {
                out[k].push_str(t.trim_start());
            }
        } else {
            out.push(line.to_string());
        }
    }
    out
}

/// Lines worth a student's time: the lab's syscalls, minus the dynamic loader's and the
/// runtime's traffic (library loading, PATH search, private futexes).
fn interesting(line: &str, dir: Option<&str>) -> bool {
    let mentions = |s: &str| line.contains(s);
    let about_us = dir.is_some_and(mentions)
        || mentions("/dev/shm/")
        || mentions("\"ping ")
        || mentions("\"pong ")
        || mentions("MAP_SHARED");
    if line.contains(" write(2, ") {
        return false;
    }
    let call = line.split_whitespace().nth(1).unwrap_or("");
    // A failed exec is the PATH search trying directories; private futexes are locks inside
    // one process (libc, the runtime), not the shared semaphores a lab teaches.
    // The Rust runtime's own SIGSEGV/SIGBUS handlers (stack overflow reports) are not the
    // program's signal handling either.
    if (call.starts_with("execve(") && line.contains(" = -1 "))
        || (call.starts_with("futex(") && line.contains("_PRIVATE"))
        || (call.starts_with("rt_sigaction(SIGSEGV") || call.starts_with("rt_sigaction(SIGBUS"))
    {
        return false;
    }
    let noisy = [
        "openat(",
        "open(",
        "read(",
        "write(",
        "mmap(",
        "close(",
        "dup2(",
        "dup3(",
        "poll(",
        "newfstatat(",
        "fstat(",
        "statx(",
    ];
    if noisy.iter().any(|n| {
        line.split_whitespace()
            .nth(1)
            .is_some_and(|w| w.starts_with(n))
    }) {
        return about_us;
    }
    !mentions("exited with") && !mentions("+++")
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(n).collect::<String>())
    }
}

/// The command as a student would type it: our binaries as target/..., and an argument with
/// spaces or shell characters single-quoted (`sh -c 'cat a b'`).
fn display_cmd(argv: &[&str]) -> String {
    argv.iter()
        .map(|a| {
            let short = a
                .rsplit_once("/target/")
                .map(|(_, rest)| format!("target/{rest}"))
                .unwrap_or_else(|| a.to_string());
            let plain = !short.is_empty()
                && short
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
            if plain {
                short
            } else {
                format!("'{}'", short.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A running command: its merged output is read line by line, echoed as it arrives.
/// Pids of the commands started by `spawn` and not yet finished.
static HELD: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

pub struct Live {
    pub child: Child,
    stdin: Option<ChildStdin>,
    reader: std::io::PipeReader,
    buf: Vec<u8>,
    /// Everything read so far.
    pub text: String,
    /// Print lines as they arrive.
    pub echo: bool,
}

impl Live {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Reads and echoes lines until one contains `needle`; returns that line.
    pub fn wait_for(&mut self, needle: &str) -> Result<String> {
        loop {
            match self.next_line()? {
                Some(line) if line.contains(needle) => return Ok(line),
                Some(_) => continue,
                None => {
                    return Err(Error::runtime(format!(
                        "output ended before a line with {needle:?}"
                    )))
                }
            }
        }
    }

    /// Next line of output, or None at end of file (every writer closed it).
    pub fn next_line(&mut self) -> Result<Option<String>> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let line = String::from_utf8_lossy(&line).trim_end().to_string();
                if self.echo {
                    // The walkthrough answers the programs' prompts itself (it closes their
                    // stdin): the student is asked nothing there.
                    let (a, b) = if fr() {
                        (
                            "(le déroulé fermera son entrée standard)",
                            "(le déroulé fermera son entrée standard, ce qui le récupère)",
                        )
                    } else {
                        (
                            "(the walkthrough will close its stdin)",
                            "(the walkthrough will close its stdin, which reaps it)",
                        )
                    };
                    let shown = line
                        .replace("(press Enter or close stdin)", a)
                        .replace("then press Enter to reap", b);
                    println!("   {shown}");
                }
                self.text.push_str(&line);
                self.text.push('\n');
                return Ok(Some(line));
            }
            let ready = crate::signals::poll_fds(&[self.reader.as_fd()], Some(STUCK))?;
            if ready.first() != Some(&true) {
                return Err(Error::runtime(format!(
                    "no output for {} s: the program looks stuck",
                    STUCK.as_secs()
                )));
            }
            let mut chunk = [0u8; 4096];
            let n = self
                .reader
                .read(&mut chunk)
                .map_err(|e| Error::io(&e, "read", "output pipe"))?;
            if n == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                self.buf.push(b'\n');
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Closes stdin (the demos' "press Enter or close stdin").
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Closes stdin, echoes the rest of the output, waits; returns (exit status, all output).
    pub fn finish(mut self) -> Result<(i32, String)> {
        self.close_stdin();
        while self.next_line()?.is_some() {}
        let st = self.child.wait();
        if let Ok(mut h) = HELD.lock() {
            h.retain(|p| *p != self.child.id() as i32);
        }
        let st = st.map_err(|e| Error::io(&e, "waitpid", self.child.id()))?;
        let code = st.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&st).unwrap_or(0)
        });
        println!(
            "   ({} {code})",
            if fr() {
                "code de sortie"
            } else {
                "exit status"
            }
        );
        Ok((code, self.text))
    }
}

/// For steps on other machines: this machine's name, and the first machine of the file that
/// is not this one (the first of all when every name is this one).
pub fn here_and_there(hosts: &[String]) -> (String, String) {
    let here = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let there = hosts
        .iter()
        .find(|h| **h != here)
        .or(hosts.first())
        .cloned()
        .unwrap_or_default();
    (here, there)
}

/// `ssh -o BatchMode=yes HOST CMD` (no prompt can hang a walkthrough), as an argv.
pub fn ssh_argv(host: &str, cmd: String) -> Vec<String> {
    ["ssh", "-o", "BatchMode=yes", host]
        .iter()
        .map(|s| s.to_string())
        .chain([cmd])
        .collect()
}

/// A word quoted for the remote shell (empty if it cannot be: a NUL byte).
pub fn sh_quote(s: &str) -> String {
    shlex::try_quote(s)
        .map(|c| c.into_owned())
        .unwrap_or_default()
}

/// First number following `prefix` in `text` (e.g. a pid after "started secondary ").
pub fn number_after(text: &str, prefix: &str) -> Option<i32> {
    let rest = &text[text.find(prefix)? + prefix.len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// The pid inside a `[role PID]` tag.
pub fn pid_of_role(text: &str, role: &str) -> Option<i32> {
    number_after(text, &format!("[{role} "))
}
