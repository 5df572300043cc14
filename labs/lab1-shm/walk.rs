//! Lab 1 walkthrough: a POSIX shared-memory segment, who creates and removes it, why synchronise.

use crate::error::Result;
use crate::shm;
use crate::tr;
use crate::walkthrough::Walk;
use rand::RngExt;

pub fn walk(w: &mut Walk) -> Result<()> {
    let k: u64 = rand::rng().random_range(3..=6);
    let main = w.bin("shm-main");

    w.step(tr!(
        w,
        "What shm_open + ftruncate make: a file in /dev/shm (1.a)",
        "Ce que font shm_open + ftruncate : un fichier dans /dev/shm (1.a)"
    ));
    w.say(tr!(
        w,
        "The POSIX shared-memory API is shm_open (create or open a named object, O_CREAT|O_EXCL
         so we never take over someone else's), ftruncate (give it a size), mmap with MAP_SHARED
         (see the same pages in each process), munmap, and shm_unlink (remove the name; pages
         live until the last mapping goes). On Linux the object is a file in the /dev/shm tmpfs,
         mode 0600 here: only our user can map it.",
        "L'API de mémoire partagée POSIX : shm_open (créer ou ouvrir un objet nommé, avec
         O_CREAT|O_EXCL pour ne jamais s'emparer de celui d'un autre), ftruncate (lui donner une
         taille), mmap avec MAP_SHARED (voir les mêmes pages dans chaque processus), munmap, et
         shm_unlink (supprimer le nom ; les pages vivent jusqu'à la dernière projection). Sous
         Linux l'objet est un fichier du tmpfs /dev/shm, ici en mode 0600 : seul notre utilisateur
         peut le projeter."
    ));
    {
        let name = shm::unique_name("ipclab");
        let seg = shm::Segment::create(&name, 8192)?;
        let _ = w.shell(&["ls", "-l", &format!("/dev/shm{}", seg.name())]);
    }

    python_trap(w)?;

    w.step(&tr!(
        w,
        format!("{k} messages through the segment, synchronised by two semaphores"),
        format!("{k} messages par le segment, synchronisés par deux sémaphores")
    ));
    w.say(tr!(
        w,
        "main creates the segment, starts the secondary (fork + execve, passing the name), then for
         each message: copies it in, sem_post(request), sem_wait(reply), checks the answer (the
         secondary wrote the message back in uppercase, in place). The two semaphores live in
         the segment (sem_init with pshared = 1). The creator is the owner: the secondary exits
         first, main reaps it, then main shm_unlinks the name.",
        "main crée le segment, lance le secondaire (fork + execve, en lui passant le nom), puis
         pour chaque message : l'y copie, sem_post(requête), sem_wait(réponse), vérifie la réponse
         (le secondaire a récrit le message en majuscules, sur place). Les deux sémaphores vivent
         dans le segment (sem_init avec pshared = 1). Le créateur en est le propriétaire : le
         secondaire se termine d'abord, main le récupère, puis main fait shm_unlink du nom."
    ));
    let (code, out) = w.shell(&[&main, "--messages", &k.to_string()])?;
    let verified = out
        .lines()
        .filter(|l| l.ends_with("reply verified"))
        .count() as u64;
    w.expect(
        code == 0,
        tr!(
            w,
            "main exited with status 0",
            "main s'est terminé avec le code 0"
        ),
    );
    w.expect(
        verified == k,
        &tr!(
            w,
            format!("{k} replies verified"),
            format!("{k} réponses vérifiées")
        ),
    );
    w.expect(
        out.contains("exited with status 0; reaped"),
        tr!(
            w,
            "main reaped the secondary first",
            "main a d'abord récupéré le secondaire"
        ),
    );
    w.expect(
        out.contains("unlinked /dev/shm/"),
        tr!(
            w,
            "main unlinked the segment",
            "main a supprimé le segment (shm_unlink)"
        ),
    );

    w.step(tr!(
        w,
        "The same run under strace",
        "La même exécution sous strace"
    ));
    w.say(tr!(
        w,
        "shm_open is an openat under /dev/shm (O_CREAT|O_EXCL for main, neither for the secondary).
         ftruncate sizes it, mmap(MAP_SHARED) maps it. sem_wait/sem_post show up as futex calls
         only when someone must sleep or be woken: an uncontended semaphore never enters the
         kernel. shm_unlink is an unlink of the /dev/shm path.",
        "shm_open est un openat sous /dev/shm (O_CREAT|O_EXCL pour main, ni l'un ni l'autre pour le
         secondaire). ftruncate le dimensionne, mmap(MAP_SHARED) le projette. sem_wait/sem_post
         n'apparaissent comme appels futex que quand quelqu'un doit dormir ou être réveillé : un
         sémaphore sans attente n'entre jamais dans le noyau. shm_unlink est un unlink du chemin
         sous /dev/shm."
    ));
    w.strace(&[&main, "--messages", "2"], None)?;

    w.step(tr!(
        w,
        "Why synchronise: --no-sync (torn reads)",
        "Pourquoi synchroniser : --no-sync (lectures déchirées)"
    ));
    w.say(tr!(
        w,
        "Without the semaphores main rewrites a 4-page message (generation g in every word) while
         the secondary copies it; a copy that holds two generations is torn. The count depends on
         timing and the cores available: it may be 0 on an idle or single-core machine, which does
         not make the unsynchronised version correct.",
        "Sans les sémaphores, main récrit un message de 4 pages (la génération g dans chaque mot)
         pendant que le secondaire le copie ; une copie qui contient deux générations est déchirée.
         Le nombre dépend du moment et des cœurs disponibles : il peut être 0 sur une machine
         inactive ou à un seul cœur, ce qui ne rend pas correcte la version non synchronisée."
    ));
    let (code, out) = w.shell(&[&main, "--messages", "2000", "--no-sync", "--quiet"])?;
    w.expect(
        code == 0 && out.contains("torn reads: "),
        tr!(
            w,
            "the secondary reported its torn-read count",
            "le secondaire a donné son nombre de lectures déchirées"
        ),
    );
    Ok(())
}

/// The Python side of 1.a, and its trap: before 3.13 a process that merely attaches to a
/// segment with `multiprocessing.shared_memory` unlinks it when it exits (its resource tracker).
const PY_DEMO: &str = r#"import os, sys
from multiprocessing import resource_tracker, shared_memory
mode, name = sys.argv[1], sys.argv[2]
if mode == "create":
    # The creator keeps its own tracker out (see the kit): only the attaching process has one.
    resource_tracker.register = resource_tracker.unregister = lambda name, rtype: None
    seg = shared_memory.SharedMemory(name=name, create=True, size=4096)
    seg.buf[0:5] = b"hello"
    print("created /dev/shm/" + name)
else:
    seg = shared_memory.SharedMemory(name=name)
    print("attached: it reads", bytes(seg.buf[0:5]), "then exits without unlinking")
seg.close()
"#;

fn python_trap(w: &mut Walk) -> Result<()> {
    w.step(tr!(
        w,
        "The same from Python: multiprocessing.shared_memory, and its trap (1.a)",
        "La même chose en Python : multiprocessing.shared_memory, et son piège (1.a)"
    ));
    w.say(tr!(
        w,
        "The standard library's module is multiprocessing.shared_memory (since 3.8): SharedMemory(
         name, create=True, size=N) is shm_open(O_CREAT|O_EXCL, 0600) + ftruncate + mmap, .buf the
         mapping, .close() munmap, .unlink() shm_unlink; SharedMemory(name) attaches. mmap alone
         maps a file or anonymous memory, shared only with the children that inherit it;
         third-party modules (posix_ipc, sysv_ipc) wrap the C calls, but are not maintained with
         Python. The trap: every SharedMemory, even one that only attaches, registers with a
         resource tracker process, which unlinks the segment when the process that registered it
         exits (3.13 added track=False). Watch a process that only attaches remove the creator's
         segment:",
        "Le module de la bibliothèque standard est multiprocessing.shared_memory (depuis 3.8) :
         SharedMemory(nom, create=True, size=N) fait shm_open(O_CREAT|O_EXCL, 0600) + ftruncate +
         mmap, .buf est la projection, .close() fait munmap, .unlink() fait shm_unlink ;
         SharedMemory(nom) s'attache. mmap seul projette un fichier ou une mémoire anonyme,
         partagée seulement avec les enfants qui en héritent ; des modules tiers (posix_ipc,
         sysv_ipc) enveloppent les appels C, mais ne sont pas maintenus avec Python. Le piège :
         chaque SharedMemory, même celui qui ne fait que s'attacher, s'inscrit auprès d'un
         processus resource tracker, qui supprime le segment quand le processus inscrit se termine
         (3.13 a ajouté track=False). Regardez un processus qui ne fait que s'attacher supprimer le
         segment du créateur :"
    ));
    if std::process::Command::new("python3")
        .arg("-c")
        .arg("import multiprocessing.shared_memory")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        w.say(tr!(
            w,
            "(skipped: no python3 with multiprocessing.shared_memory on PATH)",
            "(sauté : aucun python3 avec multiprocessing.shared_memory dans le PATH)"
        ));
        return Ok(());
    }
    let dir = tempfile::tempdir().map_err(|e| crate::error::Error::io(&e, "mkdir", "TMPDIR"))?;
    let script = dir.path().join("shm_demo.py");
    std::fs::write(&script, PY_DEMO)
        .map_err(|e| crate::error::Error::io(&e, "write", script.display()))?;
    let script = script.display().to_string();
    // Named like every ipclab object, so an interrupted walkthrough removes it too.
    let name = crate::shm::unique_name("ipclab")
        .trim_start_matches('/')
        .to_string();
    let path = format!("/dev/shm/{name}");
    let (code, _) = w.shell(&["python3", &script, "create", &name])?;
    w.expect(
        code == 0,
        tr!(
            w,
            "python3 created the segment",
            "python3 a créé le segment"
        ),
    );
    let _ = w.shell(&["ls", "-l", &path]);
    w.strace_only(
        &["python3", &script, "attach", &name],
        "unlink,openat",
        "/dev/shm/",
    )?;
    let gone = !std::path::Path::new(&path).exists();
    let _ = w.shell(&["ls", "/dev/shm"]);
    w.expect(
        gone,
        &tr!(
            w,
            format!("{path} is gone: the attaching process's tracker unlinked it"),
            format!("{path} a disparu : le tracker du processus qui s'est attaché l'a supprimé")
        ),
    );
    if !gone {
        let _ = nix::sys::mman::shm_unlink(format!("/{name}").as_str());
    }
    w.say(tr!(
        w,
        "The unlink above was made by the resource tracker, a child of the attaching process,
         as it exited. Fix: pass track=False (3.13+), or, before 3.13, keep the tracker out as the
         lab 1 kit does; the creator alone unlinks. The tracker is also a process of your tree:
         a child of the first process that used SharedMemory, it ends only after that process,
         so a grader looking for processes left running sees it.",
        "Le unlink ci-dessus est le fait du resource tracker, enfant du processus qui s'est
         attaché, à sa sortie. Le remède : passer track=False (3.13+), ou, avant 3.13, tenir le
         tracker à l'écart comme le fait le kit du TP 1 ; le créateur seul supprime. Le tracker est
         aussi un processus de votre arbre : enfant du premier processus qui a utilisé
         SharedMemory, il ne finit qu'après lui, si bien qu'un correcteur qui cherche les processus
         restants le voit."
    ));
    Ok(())
}
