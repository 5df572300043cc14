//! What the grader puts in a box (`crate::sandbox` builds it): which uid, what is hidden (the
//! checkout, with the reference programs and the kits' solutions), what the submission may see
//! (its own directory, read-only), the reference programs as execute-only copies, the limits
//! and the environment — and the lines of the report header that say all of it.

use crate::error::{Error, Result};
use crate::sandbox::{self, BoxDir, Lease, MountOp, Powers, Refs};
use crate::spec::Contract;
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// Directories an exposed path may sit in without being bound: the system's own.
const SYSTEM: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc"];

pub struct Ctx {
    pub powers: Powers,
    pub run_as: Option<(u32, u32)>,
    _lease: Option<Lease>,
    /// The box's second uid, for reference programs run beside the implementation.
    second: Option<Lease>,
    pub refs: Option<Refs>,
    /// Hidden from the box (empty tmpfs over each).
    pub hidden: Vec<PathBuf>,
    /// Visible read-only inside the box (the submission's directories).
    pub exposed: Vec<PathBuf>,
    pub notes: Vec<String>,
    exe_dir: PathBuf,
}

impl Ctx {
    /// `uid`: a leased uid the calling ipclab holds (batch grading), else one is claimed here.
    pub fn new(uid: Option<u32>, extra_hidden: &[PathBuf]) -> Result<Ctx> {
        let powers = sandbox::powers();
        let exe =
            std::env::current_exe().map_err(|e| Error::io(&e, "readlink", "/proc/self/exe"))?;
        let exe_dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut notes = Vec::new();
        let (lease, run_as) = match (uid, powers.drop_uid) {
            (Some(u), true) => {
                Lease::check_held_by_parent(u)?;
                (None, Some((u, u)))
            }
            (Some(_), false) => {
                return Err(Error::usage(
                    "--uid needs root with CAP_SETUID: without it the program runs as you",
                ))
            }
            (None, true) => {
                let l = Lease::claim()?;
                let u = l.uid();
                (Some(l), Some((u, u)))
            }
            (None, false) => (None, None),
        };
        match run_as {
            Some((u, _)) => notes.push(tf!("uid: {u} ({}), leased for this grading only ({}..={}), never root, its own \
                 session", "uid : {u} ({}), prêté pour cette seule correction ({}..={}), jamais root, sa propre \
                 session",
                box_user(u),
                sandbox::UID_FIRST,
                sandbox::UID_LAST
            )),
            None if nix::unistd::geteuid().is_root() => notes.push(
                tf!("uid: root without CAP_SETUID/CAP_SETGID: the program runs as root (no uid drop)", "uid : root sans CAP_SETUID/CAP_SETGID : le programme tourne en root (pas de changement d'uid)"),
            ),
            None => notes.push(tf!("uid: {} (yours: a normal user's grader cannot switch uid), its own session", "uid : {} (le vôtre : le correcteur d'un utilisateur ordinaire ne peut pas changer d'uid), sa propre session",
                nix::unistd::getuid()
            )),
        }
        let mut hidden: Vec<PathBuf> = Vec::new();
        if powers.namespaces {
            hidden.push(checkout_of(&exe_dir).unwrap_or_else(|| exe_dir.clone()));
            for h in extra_hidden {
                if let Ok(c) = h.canonicalize() {
                    hidden.push(c);
                }
            }
        }
        let refs = if powers.namespaces {
            Some(Refs::new(&exe_dir)?)
        } else {
            None
        };
        Ok(Ctx {
            powers,
            run_as,
            _lease: lease,
            second: None,
            refs,
            hidden,
            exposed: Vec::new(),
            notes,
            exe_dir,
        })
    }

    /// The submission's directories: the program's, and those of the arguments naming files
    /// (an interpreter's script). System directories need no binding.
    pub fn expose_command(&mut self, program: &Path, args: &[String]) {
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut add = |p: &Path| {
            let Ok(c) = p.canonicalize() else { return };
            let d = if c.is_dir() {
                c
            } else {
                c.parent().map(Path::to_path_buf).unwrap_or_default()
            };
            if d == Path::new("/") || SYSTEM.iter().any(|s| d.starts_with(s)) {
                return;
            }
            if d.starts_with(sandbox::STATE) || dirs.contains(&d) {
                return;
            }
            dirs.push(d);
        };
        add(program);
        for a in args.iter().filter(|a| a.starts_with('/')) {
            if Path::new(a).exists() {
                add(Path::new(a));
            }
        }
        // A directory inside another exposed one is already visible.
        let all = dirs.clone();
        dirs.retain(|d| !all.iter().any(|o| o != d && d.starts_with(o)));
        // What holds a hidden directory cannot be exposed without showing it: say so.
        for d in &dirs {
            if let Some(h) = self.hidden.iter().find(|h| h.starts_with(d)) {
                self.notes.push(tf!(
                    "hidden: not {} — the submission's directory {} holds it",
                    "masqué : pas {} — le répertoire de la soumission {} le contient",
                    h.display(),
                    d.display()
                ));
            }
        }
        self.hidden
            .retain(|h| !dirs.iter().any(|d| h.starts_with(d)));
        self.exposed = dirs;
    }

    /// Where the box runs a reference program: its execute-only copy (or itself, unboxed).
    pub fn reference(&self, p: &Path) -> Result<PathBuf> {
        match &self.refs {
            Some(r) if p.starts_with(&self.exe_dir) => r.add(p, 0o111),
            _ => Ok(p.to_path_buf()),
        }
    }

    /// A preloaded library (the race shim): a readable copy outside the hidden checkout.
    pub fn library(&self, p: &Path) -> Result<PathBuf> {
        match &self.refs {
            Some(r) => r.add(p, 0o444),
            None => Ok(p.to_path_buf()),
        }
    }

    /// Rewrites reference paths inside a command string (lab 4's `--dispatcher CMD`).
    pub fn rewrite(&self, arg: &str) -> Result<String> {
        let Some(r) = &self.refs else {
            return Ok(arg.to_string());
        };
        let prefix = format!("{}/", self.exe_dir.display());
        if !arg.contains(&prefix) {
            return Ok(arg.to_string());
        }
        for word in shlex::split(arg).unwrap_or_default() {
            if let Some(name) = word.strip_prefix(&prefix) {
                if !name.contains('/') {
                    self.reference(&self.exe_dir.join(name))?;
                }
            }
        }
        Ok(arg.replace(&prefix, &format!("{}/", r.dir.display())))
    }

    /// The uid reference programs run as beside the implementation (leased on first use), when
    /// the box has uids of its own.
    pub fn reference_uid(&mut self) -> Result<Option<u32>> {
        if self.run_as.is_none() {
            return Ok(None);
        }
        if self.second.is_none() {
            self.second = Some(Lease::claim()?);
        }
        Ok(self.second.as_ref().map(|l| l.uid()))
    }

    pub fn new_box(&self, c: &Contract) -> Result<BoxDir> {
        let b = BoxDir::new(
            self.run_as.map(|(u, _)| u),
            self.powers.namespaces,
            c.box_mb,
        )?;
        if let (Some((u, _)), true) = (self.run_as, b.mounted) {
            let mut users = vec![(u, box_user(u))];
            if let Some(r) = &self.second {
                users.push((r.uid(), box_user(r.uid())));
            }
            b.write_identity(&users)?;
        }
        if let Some(r) = &self.second {
            b.share_with(r.uid())?;
        }
        Ok(b)
    }

    /// The child's mount operations for box `b`, and the names they create in the box's /tmp
    /// (mount points, not the program's leftovers).
    pub fn mounts(&self, b: &BoxDir) -> Result<(Vec<MountOp>, Vec<String>)> {
        if !b.mounted {
            return Ok((Vec::new(), Vec::new()));
        }
        let c = |p: &Path| {
            CString::new(p.as_os_str().as_encoded_bytes())
                .map_err(|_| Error::usage(format!("NUL byte in path {}", p.display())))
        };
        let mut ops = vec![MountOp::Private];
        let mut staged = Vec::new();
        for (k, s) in self.exposed.iter().enumerate() {
            let st = b.stage(k)?;
            ops.push(MountOp::Bind {
                src: c(s)?,
                dst: c(&st)?,
                recursive: false,
            });
            staged.push((st, s.clone()));
        }
        let etc = b.root.join("etc");
        for (src, dst) in [
            (b.tmp(), PathBuf::from("/tmp")),
            (b.shm(), PathBuf::from("/dev/shm")),
            (etc.join("passwd"), PathBuf::from("/etc/passwd")),
            (etc.join("group"), PathBuf::from("/etc/group")),
        ] {
            ops.push(MountOp::Bind {
                src: c(&src)?,
                dst: c(&dst)?,
                recursive: false,
            });
        }
        let in_box_tmp = |p: &Path| p.starts_with("/tmp") || p.starts_with("/dev/shm");
        let hidden: Vec<&PathBuf> = self
            .hidden
            .iter()
            .filter(|h| !in_box_tmp(h) && h.is_dir())
            .collect();
        for h in &hidden {
            ops.push(MountOp::Hide { dst: c(h)? });
        }
        let mut made = Vec::new();
        for (st, s) in &staged {
            ops.push(MountOp::Mkdirs { path: c(s)? });
            ops.push(MountOp::Move {
                src: c(st)?,
                dst: c(s)?,
            });
            ops.push(MountOp::ReadOnly {
                dst: c(s)?,
                bind: true,
            });
            if let Ok(rest) = s.strip_prefix("/tmp") {
                if let Some(first) = rest.components().next() {
                    made.push(first.as_os_str().to_string_lossy().into_owned());
                }
            }
        }
        for h in &hidden {
            ops.push(MountOp::ReadOnly {
                dst: c(h)?,
                bind: false,
            });
        }
        Ok((ops, made))
    }

    /// The report header's lines about the box.
    pub fn protections(&self, c: &Contract, timeout_s: f64, mounted: bool) -> Vec<String> {
        let mut v = self.notes.clone();
        if self.powers.namespaces {
            v.push(tf!(
                "network: a fresh namespace, loopback only",
                "réseau : un espace de noms neuf, boucle locale seule"
            ));
            v.push(tf!(
                "IPC: a fresh namespace (System V objects and POSIX queues die with it)",
                "IPC : un espace de noms neuf (objets System V et files POSIX meurent avec lui)"
            ));
        } else if !self.powers.userns {
            v.push(tf!(
                "namespaces: none (needs root with CAP_SYS_ADMIN, or user namespaces): shared \
                 network and IPC",
                "espaces de noms : aucun (il faut root avec CAP_SYS_ADMIN, ou les espaces de \
                 noms utilisateur) : réseau et IPC partagés"
            ));
        }
        if mounted {
            v.push(tf!(
                "files: cwd, DIR, /tmp and /dev/shm on the box's own tmpfs ({} MiB in all), \
                 removed after each run; what is left there is reported",
                "fichiers : cwd, DIR, /tmp et /dev/shm sur le tmpfs propre à la boîte ({} Mio en \
                 tout), supprimé après chaque exécution ; ce qui y reste est signalé",
                c.box_mb
            ));
            let shown = |v: &[PathBuf]| {
                v.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if !self.hidden.is_empty() {
                v.push(tf!("hidden: {}", "masqués : {}", shown(&self.hidden)));
            }
            if !self.exposed.is_empty() {
                v.push(tf!(
                    "read-only: {}",
                    "en lecture seule : {}",
                    shown(&self.exposed)
                ));
            }
            if let Some(r) = &self.refs {
                v.push(tf!(
                    "reference programs: execute-only copies in {}",
                    "programmes de référence : copies en exécution seule dans {}",
                    r.dir.display()
                ));
            }
        } else {
            v.push(tf!(
                "files: cwd and DIR in a private directory of /tmp; /tmp and /dev/shm shared \
                 (leaks judged by the contract's names only)",
                "fichiers : cwd et DIR dans un répertoire privé de /tmp ; /tmp et /dev/shm \
                 partagés (fuites jugées sur les seuls noms du contrat)"
            ));
        }
        v.push(tf!(
            "limits: wall {timeout_s:.1} s, CPU {} s, memory {} MiB per process (RLIMIT_AS), \
             files {} MiB (RLIMIT_FSIZE), output {} bytes per stream, lines {} bytes",
            "limites : durée {timeout_s:.1} s, CPU {} s, mémoire {} Mio par processus \
             (RLIMIT_AS), fichiers {} Mio (RLIMIT_FSIZE), sortie {} octets par flux, lignes {} \
             octets",
            timeout_s.ceil() as u64 + 1,
            c.memory_mb,
            c.file_size_mb,
            c.output_cap_bytes,
            super::harness::LINE_CAP
        ));
        v.push(tf!(
            "descriptors: 0 is /dev/null, 1 and 2 pipes to the grader, nothing else inherited",
            "descripteurs : 0 est /dev/null, 1 et 2 des tubes vers le correcteur, rien d'autre \
             d'hérité"
        ));
        v
    }
}

/// The box user's name inside its passwd.
pub fn box_user(uid: u32) -> String {
    format!("ipclab{uid}")
}

/// The checkout this ipclab was built in (target/<profile>/ipclab): the directory holding
/// Cargo.toml and labs/ above the executable.
fn checkout_of(exe_dir: &Path) -> Option<PathBuf> {
    exe_dir
        .ancestors()
        .find(|d| d.join("Cargo.toml").is_file() && d.join("labs").is_dir())
        .map(Path::to_path_buf)
}
