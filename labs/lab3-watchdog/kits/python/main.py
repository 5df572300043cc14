#!/usr/bin/python3
"""Lab 3 starter: a watchdog that starts its servers, reaps and restarts them, detects hangs,
and stops them in order.

The lab text: labs/lab3-watchdog/README.md (the grading contract is at its end).
Run it:   python3 main.py --secondaries 2 --heartbeat-ms 50 --hang-ms 400 --events ev.jsonl --dir "$(mktemp -d)"
          (then kill -9 one server, kill -STOP another, and kill -TERM the watchdog)
Grade it: make grade
The servers here are stand-ins: each only writes a heartbeat byte every P ms on its own pipe,
the watchdog's control channel. Do the TODOs in order: each one not done stops the program.
"""
import argparse
import json
import os
import select
import signal
import sys
import time


def todo(tag, what):
    sys.exit(f"TODO({tag}) not done: {what} (see README.md)")


def now_ms():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1_000_000


def main():
    p = argparse.ArgumentParser(description="Lab 3: a watchdog")
    p.add_argument("--secondaries", type=int, required=True)
    p.add_argument("--heartbeat-ms", type=int, required=True)
    p.add_argument("--hang-ms", type=int, required=True)
    p.add_argument("--events", required=True)
    p.add_argument("--dir", required=True)
    a = p.parse_args()
    events = open(a.events, "a", buffering=1)

    def log(event, role, pid=None, status=None):
        """One JSON line per event (the contract's format)."""
        e = {"ts_ms": now_ms(), "event": event, "role": role}
        if pid is not None:
            e["pid"] = pid
        if status is not None:
            e["status"] = status
        events.write(json.dumps(e) + "\n")

    flags = {"chld": False, "term": False}
    servers = {}  # role -> {"pid", "fd" (heartbeat pipe), "last" (ms)}
    # TODO(lab3.1): a self-pipe (os.pipe, signal.set_wakeup_fd on its non-blocking write end) and handlers for SIGCHLD and SIGTERM that only set flags | fr: un auto-tube (os.pipe, signal.set_wakeup_fd sur son bout d'écriture non bloquant) et des gestionnaires de SIGCHLD et SIGTERM qui ne font que lever des drapeaux
    wake_r = todo("lab3.1", "signals into a self-pipe")
    # END TODO(lab3.1)

    def start(role):
        """fork one server; the child beats on a pipe every P ms until killed."""
        # TODO(lab3.2): pipe + fork (block SIGTERM across the fork); the child restores SIGCHLD/SIGTERM to SIG_DFL, unblocks, and writes a byte every P ms; the parent keeps servers[role] and logs "start" | fr: pipe + fork (SIGTERM bloqué pendant le fork) ; l'enfant remet SIGCHLD/SIGTERM par défaut et écrit un octet toutes les P ms ; le parent note servers[role] et journalise « start »
        todo("lab3.2", "start a server")
        # END TODO(lab3.2)

    roles = ["main"] + [f"secondary-{i}" for i in range(1, a.secondaries + 1)]
    for role in roles:
        start(role)
    while not flags["term"]:
        # TODO(lab3.3): select on wake_r and every heartbeat pipe (timeout P ms); drain wake_r; a byte from a server updates its "last" | fr: select sur wake_r et chaque tube de battements (délai P ms) ; vider wake_r ; un octet d'un serveur met à jour son « last »
        todo("lab3.3", "the poll loop")
        # END TODO(lab3.3)
        # TODO(lab3.4): if SIGCHLD came: waitpid(-1, WNOHANG) until 0 or ECHILD; for each dead server log "exit" with its status, close its pipe, start it again | fr: si SIGCHLD est venu : waitpid(-1, WNOHANG) jusqu'à 0 ou ECHILD ; pour chaque serveur mort, journaliser « exit » et son code, fermer son tube, le relancer
        todo("lab3.4", "reap and restart")
        # END TODO(lab3.4)
        # TODO(lab3.5): a server silent for more than T ms is hung: log "hang" and SIGKILL it (its SIGCHLD then restarts it) | fr: un serveur muet depuis plus de T ms est bloqué : journaliser « hang » et le tuer par SIGKILL (son SIGCHLD le relancera)
        todo("lab3.5", "hang detection")
        # END TODO(lab3.5)
    # TODO(lab3.6): shutdown: log "shutdown"; SIGCHLD back to SIG_DFL; secondaries first, then main: SIGTERM + SIGCONT, waitpid, log "exit"; log the watchdog's own "exit" 0; return 0 | fr: arrêt : journaliser « shutdown » ; les secondaires d'abord, puis le principal : SIGTERM + SIGCONT, waitpid, journaliser « exit » ; puis « exit » 0 du chien de garde ; renvoyer 0
    todo("lab3.6", "the orderly shutdown")
    # END TODO(lab3.6)


if __name__ == "__main__":
    sys.exit(main())
