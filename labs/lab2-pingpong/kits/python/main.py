#!/usr/bin/python3
"""Lab 2 starter: two named pipes, N ping-pong exchanges, a clean shutdown.

The lab text: labs/lab2-pingpong/README.md (the grading contract is at its end).
Run it:   python3 main.py --exchanges 3 --dir "$(mktemp -d)"
Grade it: make grade
Do the TODOs in order: each one not done stops the program and says which it is.
"""
import argparse
import os
import sys


def todo(tag, what):
    sys.exit(f"TODO({tag}) not done: {what} (see README.md)")


def secondary(n, ping, pong):
    """The child: answers each ping, then exits 0."""
    # Unbuffered files (open(..., "rb", buffering=0)) make each write one write(2), with no buffer to flush;
    # but readline() on them reads one byte per read(2) (strace shows it): fine for these short lines.
    # TODO(lab2.3): open ping for reading, then pong for writing, unbuffered (open(..., "rb", buffering=0)) | fr: ouvrir ping en lecture puis pong en écriture, sans tampon (open(..., "rb", buffering=0)) : chaque write est alors un seul write(2), mais readline() lit un octet par read(2)
    todo("lab2.3", "the secondary opens the two FIFOs")
    # END TODO(lab2.3)
    for i in range(1, n + 1):
        # TODO(lab2.4): read the line "ping i\n", print "pong i" (flush=True), write "pong i\n" to pong | fr: lire « ping i », afficher « pong i » (flush=True), écrire « pong i » dans pong
        todo("lab2.4", "the secondary answers ping i")
        # END TODO(lab2.4)
    return 0


def main():
    p = argparse.ArgumentParser(description="Lab 2: ping-pong over two FIFOs")
    p.add_argument("--exchanges", type=int, required=True)
    p.add_argument("--dir", required=True)
    a = p.parse_args()
    ping = os.path.join(a.dir, "ping")
    pong = os.path.join(a.dir, "pong")
    # TODO(lab2.1): create the two FIFOs, mode 0o600 (os.mkfifo) | fr: créer les deux FIFO, mode 0o600 (os.mkfifo)
    todo("lab2.1", "create the two FIFOs in DIR")
    # END TODO(lab2.1)
    # TODO(lab2.2): fork; in the child, os._exit(secondary(a.exchanges, ping, pong)) | fr: fork ; dans l'enfant, os._exit(secondary(...))
    todo("lab2.2", "start the secondary with fork")
    # END TODO(lab2.2)
    # TODO(lab2.5): open ping for writing, pong for reading; for i = 1..N print "ping i" (flush), send "ping i\n", read "pong i\n" | fr: ouvrir ping en écriture, pong en lecture ; pour i = 1..N afficher « ping i », l'envoyer, lire la réponse
    todo("lab2.5", "main's exchange loop")
    # END TODO(lab2.5)
    # TODO(lab2.6): wait for the secondary (os.waitpid), remove both FIFOs, return 0 | fr: attendre le secondaire (os.waitpid), supprimer les deux FIFO, renvoyer 0
    todo("lab2.6", "reap the secondary and remove the FIFOs")
    # END TODO(lab2.6)


if __name__ == "__main__":
    sys.exit(main())
