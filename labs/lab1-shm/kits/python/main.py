#!/usr/bin/python3
"""Lab 1 starter: K messages through a POSIX shared-memory segment, synchronised.

The lab text: `make text` (ipclab lab 1 --text); its grading contract is at its end.
Run it:   python3 main.py --messages 3 --name-prefix mine
Grade it: make grade
multiprocessing.shared_memory is the standard library's POSIX shared memory (shm_open + mmap):
SharedMemory(name, create=True, size=...) makes /dev/shm/NAME, .buf is the mapping, .unlink()
is shm_unlink. Do the TODOs in order: each one not done stops the program and says which it is.
"""
import argparse
import os
import sys
from multiprocessing import resource_tracker, shared_memory

SIZE = 8192

# Before Python 3.13, every SharedMemory, created or merely attached, registers with a "resource
# tracker": a process started on first use, as a child of this one, that outlives it and unlinks
# the segment when the process that registered it exits (even one that only attached). The
# grader rightly sees it as a process left running. 3.13 added track=False; before it, make the
# registration a no-op, so that no tracker starts: this program unlinks its segment itself.
if sys.version_info < (3, 13):
    resource_tracker.register = resource_tracker.unregister = lambda name, rtype: None


def segment(name, create):
    """The segment /dev/shm/NAME, created (O_CREAT | O_EXCL, mode 0600) or attached."""
    untracked = {"track": False} if sys.version_info >= (3, 13) else {}
    return shared_memory.SharedMemory(name=name, create=create, size=SIZE if create else 0, **untracked)


def todo(tag, what):
    sys.exit(f"TODO({tag}) not done: {what} (see README.md)")


def main():
    p = argparse.ArgumentParser(description="Lab 1: messages through shared memory")
    p.add_argument("--messages", type=int, required=True)
    p.add_argument("--name-prefix", required=True)
    a = p.parse_args()
    name = f"{a.name_prefix}-{os.getpid()}"
    # TODO(lab1.1): create the segment: shm = segment(name, create=True); its mapping is shm.buf | fr: créer le segment : shm = segment(name, create=True) ; sa projection est shm.buf
    todo("lab1.1", "create and map the segment")
    # END TODO(lab1.1)
    # Two pipes carry "your turn" tokens; the messages themselves go through the segment.
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    sys.stdout.flush()  # a forked child must not print main's buffered output again
    # TODO(lab1.2): fork; the child (it inherits the mapping), K times: wait for a token on req_r, upper-case the message in shm.buf, send a token on rep_w; then os._exit(0) | fr: fork ; l'enfant (il hérite de la projection), K fois : attendre un jeton sur req_r, mettre le message de shm.buf en majuscules, envoyer un jeton sur rep_w ; puis os._exit(0)
    todo("lab1.2", "start the secondary")
    # END TODO(lab1.2)
    # TODO(lab1.3): for i = 1..K: write a message (its length in 4 bytes, then the text) into shm.buf, send a token, wait for the answer, check it, print "message i" (flush) | fr: pour i = 1..K : écrire un message dans shm.buf, envoyer un jeton, attendre la réponse, la vérifier, afficher « message i »
    todo("lab1.3", "main's message loop")
    # END TODO(lab1.3)
    # TODO(lab1.4): reap the secondary (os.waitpid), then shm.close() and shm.unlink() (shm_unlink), return 0 | fr: récupérer le secondaire (os.waitpid), puis shm.close() et shm.unlink() (shm_unlink), renvoyer 0
    todo("lab1.4", "reap the secondary and unlink the segment")
    # END TODO(lab1.4)


if __name__ == "__main__":
    sys.exit(main())
