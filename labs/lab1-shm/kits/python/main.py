#!/usr/bin/python3
"""Lab 1 starter: K messages through a POSIX shared-memory segment, synchronised.

The lab text: labs/lab1-shm/README.md (the grading contract is at its end).
Run it:   python3 main.py --messages 3 --name-prefix mine
Grade it: make grade
On Linux, shm_open("/NAME") opens /dev/shm/NAME: os.open and mmap do the same from Python.
Do the TODOs in order: each one not done stops the program and says which it is.
"""
import argparse
import mmap
import os
import sys

SIZE = 8192


def todo(tag, what):
    sys.exit(f"TODO({tag}) not done: {what} (see README.md)")


def main():
    p = argparse.ArgumentParser(description="Lab 1: messages through shared memory")
    p.add_argument("--messages", type=int, required=True)
    p.add_argument("--name-prefix", required=True)
    a = p.parse_args()
    path = f"/dev/shm/{a.name_prefix}-{os.getpid()}"
    # TODO(lab1.1): create the segment at path (os.open with O_CREAT | O_EXCL | O_RDWR, mode 0o600), size it (os.ftruncate), map it: mm = mmap.mmap(fd, SIZE) | fr: créer le segment (os.open avec O_CREAT | O_EXCL | O_RDWR, mode 0o600), le dimensionner (os.ftruncate), le projeter : mm = mmap.mmap(fd, SIZE)
    todo("lab1.1", "create and map the segment")
    # END TODO(lab1.1)
    # Two pipes carry "your turn" tokens; the messages themselves go through the segment.
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    sys.stdout.flush()  # a forked child must not print main's buffered output again
    # TODO(lab1.2): fork; the child, K times: wait for a token on req_r, upper-case the message in the segment, send a token on rep_w; then os._exit(0) | fr: fork ; l'enfant, K fois : attendre un jeton sur req_r, mettre le message du segment en majuscules, envoyer un jeton sur rep_w ; puis os._exit(0)
    todo("lab1.2", "start the secondary")
    # END TODO(lab1.2)
    # TODO(lab1.3): for i = 1..K: write a message (its length in 4 bytes, then the text) into the segment, send a token, wait for the answer, check it, print "message i" (flush) | fr: pour i = 1..K : écrire un message dans le segment, envoyer un jeton, attendre la réponse, la vérifier, afficher « message i »
    todo("lab1.3", "main's message loop")
    # END TODO(lab1.3)
    # TODO(lab1.4): reap the secondary (os.waitpid), unlink the segment (os.unlink(path)), return 0 | fr: récupérer le secondaire (os.waitpid), supprimer le segment (os.unlink(path)), renvoyer 0
    todo("lab1.4", "reap the secondary and unlink the segment")
    # END TODO(lab1.4)


if __name__ == "__main__":
    sys.exit(main())
