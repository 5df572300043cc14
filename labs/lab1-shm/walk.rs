//! Lab 1 walkthrough: a POSIX shared-memory segment, who creates and removes it, why synchronise.

use crate::error::Result;
use crate::shm;
use crate::walkthrough::Walk;
use rand::RngExt;

pub fn walk(w: &mut Walk) -> Result<()> {
    let k: u64 = rand::rng().random_range(3..=6);
    let main = w.bin("shm-main");

    w.step("What shm_open + ftruncate make: a file in /dev/shm (1.a)");
    w.say(
        "The POSIX shared-memory API is shm_open (create or open a named object, O_CREAT|O_EXCL
         so we never take over someone else's), ftruncate (give it a size), mmap with MAP_SHARED
         (see the same pages in each process), munmap, and shm_unlink (remove the name; pages
         live until the last mapping goes). On Linux the object is a file in the /dev/shm tmpfs,
         mode 0600 here: only our user can map it.",
    );
    {
        let name = shm::unique_name("ipclab");
        let seg = shm::Segment::create(&name, 8192)?;
        let _ = w.shell(&["ls", "-l", &format!("/dev/shm{}", seg.name())]);
    }

    w.step(&format!(
        "{k} messages through the segment, synchronised by two semaphores"
    ));
    w.say(
        "main creates the segment, starts the secondary (fork + execve, passing the name), then for
         each message: copies it in, sem_post(request), sem_wait(reply), checks the answer (the
         secondary wrote the message back in uppercase, in place). The two semaphores live in
         the segment (sem_init with pshared = 1). The creator is the owner: the secondary exits
         first, main reaps it, then main shm_unlinks the name.",
    );
    let (code, out) = w.shell(&[&main, "--messages", &k.to_string()])?;
    let verified = out
        .lines()
        .filter(|l| l.ends_with("reply verified"))
        .count() as u64;
    w.expect(code == 0, "main exited with status 0");
    w.expect(verified == k, &format!("{k} replies verified"));
    w.expect(
        out.contains("exited with status 0; reaped"),
        "main reaped the secondary first",
    );
    w.expect(
        out.contains("unlinked /dev/shm/"),
        "main unlinked the segment",
    );

    w.step("The same run under strace");
    w.say(
        "shm_open is an openat under /dev/shm (O_CREAT|O_EXCL for main, neither for the secondary).
         ftruncate sizes it, mmap(MAP_SHARED) maps it. sem_wait/sem_post show up as futex calls
         only when someone must sleep or be woken: an uncontended semaphore never enters the
         kernel. shm_unlink is an unlink of the /dev/shm path.",
    );
    w.strace(&[&main, "--messages", "2"], None)?;

    w.step("Why synchronise: --no-sync (torn reads)");
    w.say(
        "Without the semaphores main rewrites a 4-page message (generation g in every word) while
         the secondary copies it; a copy that holds two generations is torn. The count depends on
         timing and the cores available: it may be 0 on an idle or single-core machine, which does
         not make the unsynchronised version correct.",
    );
    let (code, out) = w.shell(&[&main, "--messages", "2000", "--no-sync", "--quiet"])?;
    w.expect(
        code == 0 && out.contains("torn reads: "),
        "the secondary reported its torn-read count",
    );
    Ok(())
}
