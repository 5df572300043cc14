#!/usr/bin/python3
"""Lab 6 starter: a daemon with start, stop and status.

The lab text: labs/lab6-daemon/README.md (the grading contract is at its end).
Run it:   python3 main.py start --dir /tmp/d ; python3 main.py status --dir /tmp/d ; ... stop ...
Grade it: make grade
Do the TODOs in order: each one not done stops the program and says which it is.
"""
import argparse
import fcntl
import os
import select
import signal
import sys


def todo(tag, what):
    sys.exit(f"TODO({tag}) not done: {what} (see README.md)")


def running(path):
    """True while a daemon holds the pidfile's lock (its pid alone could be reused)."""
    try:
        with open(path) as f:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
    except FileNotFoundError:
        return False
    except BlockingIOError:
        return True


def daemon(path, ready_w):
    """The daemon itself, after the double fork: never returns."""
    # TODO(lab6.3): umask 0, chdir "/", fds 0-2 onto /dev/null, close every other fd but ready_w | fr: umask 0, chdir("/"), fd 0 à 2 sur /dev/null, fermer tous les autres fd sauf ready_w
    todo("lab6.3", "detach from the launcher's environment")
    # END TODO(lab6.3)
    # TODO(lab6.4): open the pidfile, lock it (fcntl.flock LOCK_EX | LOCK_NB), write your pid; keep it open | fr: ouvrir le fichier de pid, le verrouiller (flock LOCK_EX | LOCK_NB), y écrire son pid ; le garder ouvert
    todo("lab6.4", "the locked pidfile")
    # END TODO(lab6.4)
    # TODO(lab6.5): on SIGTERM remove the pidfile and os._exit(0); then say "ok" on ready_w, close it, and wait for signals | fr: sur SIGTERM supprimer le fichier de pid et os._exit(0) ; puis dire « ok » sur ready_w, le fermer, et attendre les signaux
    todo("lab6.5", "SIGTERM handling, readiness")
    # END TODO(lab6.5)


def start(path):
    if running(path):
        print("already running", file=sys.stderr)
        return 1
    ready_r, ready_w = os.pipe()
    sys.stdout.flush()  # a forked child must not print main's buffered output again
    # TODO(lab6.1): fork; the child: setsid(), fork again (the middle process exits at once), and the grandchild runs daemon(path, ready_w) | fr: fork ; l'enfant : setsid(), fork encore (l'intermédiaire sort aussitôt), et le petit-enfant lance daemon(path, ready_w)
    todo("lab6.1", "the double fork")
    # END TODO(lab6.1)
    # TODO(lab6.2): reap the middle process (os.waitpid), close ready_w, wait for "ok" on ready_r; print "started", return 0 (else 1) | fr: récupérer l'intermédiaire (os.waitpid), fermer ready_w, attendre « ok » sur ready_r ; afficher « started », renvoyer 0 (sinon 1)
    todo("lab6.2", "the launcher waits for readiness")
    # END TODO(lab6.2)


def stop(path):
    if not running(path):
        print("not running")
        return 0
    # TODO(lab6.6): read the daemon's pid from the pidfile, os.pidfd_open it, send SIGTERM, wait until it has exited (select on the pidfd), return 0 | fr: lire le pid du démon, os.pidfd_open, envoyer SIGTERM, attendre sa fin (select sur le pidfd), renvoyer 0
    todo("lab6.6", "stop the daemon and wait for its end")
    # END TODO(lab6.6)


def main():
    p = argparse.ArgumentParser(description="Lab 6: a daemon")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--dir", required=True)
    a = p.parse_args()
    path = os.path.join(a.dir, "daemon.pid")
    if a.action == "start":
        return start(path)
    if a.action == "stop":
        return stop(path)
    return 0 if running(path) else 3


if __name__ == "__main__":
    sys.exit(main())
