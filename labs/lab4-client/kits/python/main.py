#!/usr/bin/python3
"""Lab 4 starter: the dispatcher and the worker of the 7-step handoff, in one program.

The lab text: labs/lab4-client/README.md (the grading contract is at its end): the reference
watchdog starts this program as `main.py dispatcher --workers K --dir DIR` and as
`main.py worker --id I --dir DIR --work-ms W`, and restarts whichever dies.
Try it:   ipclab's watchdog --serve lab4 --dispatcher "python3 main.py dispatcher" --worker "python3 main.py worker" ...
Grade it: make grade
Do the TODOs in order: each one not done stops the program and says which it is.
"""
import argparse
import os
import select
import signal
import socket
import struct
import sys
import time

MAX = 64 * 1024


class Malformed(Exception):
    pass


def todo(tag, what):
    sys.exit(f"TODO({tag}) not done: {what} (see README.md)")


def listen(path):
    """A listening Unix stream socket at path."""
    # TODO(lab4.1): socket(AF_UNIX, SOCK_STREAM), bind, listen; if bind fails because a dead server left its socket file (connecting to it is refused), unlink it and bind again | fr: socket, bind, listen ; si bind échoue parce qu'un serveur mort a laissé son fichier (la connexion est refusée), le supprimer et recommencer
    todo("lab4.1", "listen on a Unix socket (rebinding over a dead server's socket)")
    # END TODO(lab4.1)


def on_term(paths):
    # TODO(lab4.2): on SIGTERM: unlink every socket path in paths, then os._exit(0) | fr: sur SIGTERM : supprimer chaque chemin de socket de paths, puis os._exit(0)
    todo("lab4.2", "remove the sockets on SIGTERM")
    # END TODO(lab4.2)


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            if buf:
                raise Malformed("stream ended inside a frame")
            return None
        buf += chunk
    return buf


def read_frame(s):
    """One frame: a 4-byte big-endian length, then that many bytes of UTF-8; None at end of stream."""
    # TODO(lab4.3): read the 4-byte length (recv_exact), refuse more than MAX, read the body, decode UTF-8; raise Malformed on any violation | fr: lire la longueur sur 4 octets (recv_exact), refuser plus de MAX, lire le corps, décoder l'UTF-8 ; lever Malformed sinon
    todo("lab4.3", "read a frame")
    # END TODO(lab4.3)


def send_frame(s, text):
    data = text.encode()
    try:
        s.sendall(struct.pack(">I", len(data)) + data)
    except OSError:
        pass  # the peer is gone: its problem


def ask_free(d, k):
    """Steps 2-3: the first worker that answers YES to FREE?, or None."""
    # TODO(lab4.4): for w in 1..k: connect to DIR/worker-w.ctl (timeout 0.3 s), send FREE?, a YES answer returns w; errors and NO go on to the next | fr: pour w de 1 à k : se connecter à DIR/worker-w.ctl (délai 0,3 s), envoyer FREE?, un YES renvoie w ; erreurs et NO passent au suivant
    todo("lab4.4", "ask the workers FREE?")
    # END TODO(lab4.4)


def dispatcher(a):
    path = os.path.join(a.dir, "dispatcher.sock")
    srv = listen(path)
    on_term([path])
    while True:
        client, _ = srv.accept()
        client.settimeout(1)
        # TODO(lab4.5): read the client's frame (a malformed one gets "ERR ..."); HELLO gets "WORKER DIR/worker-w.sock" from ask_free, or "BUSY" at once; anything else "ERR ..."; close | fr: lire la trame du client (une trame invalide reçoit « ERR ... ») ; HELLO reçoit « WORKER ... » d'après ask_free, ou « BUSY » aussitôt ; le reste « ERR ... » ; fermer
        todo("lab4.5", "the dispatcher's handoff")
        # END TODO(lab4.5)


def worker(a):
    d, i, work = a.dir, a.id, a.work_ms / 1000
    ctl_path = os.path.join(d, f"worker-{i}.ctl")
    svc_path = os.path.join(d, f"worker-{i}.sock")
    ctl, svc = listen(ctl_path), listen(svc_path)
    on_term([ctl_path, svc_path])
    state, reserved_at, busy, waiting = "free", 0.0, None, []
    while True:
        now = time.monotonic()
        if busy and now >= busy[2]:
            send_frame(busy[0], busy[1])
            busy[0].close()
            busy, state = None, "free"
        if state == "reserved" and now - reserved_at > 2:
            state = "free"
        if state == "free":
            for c in waiting:
                send_frame(c, "YES")
                c.close()
            waiting = []
        r, _, _ = select.select([ctl, svc], [], [], max(0, busy[2] - now) if busy else 0.5)
        if ctl in r:
            c, _ = ctl.accept()
            c.settimeout(1)
            # TODO(lab4.6): control: FREE? answers YES and reserves (state "reserved", reserved_at = now) only when free, else NO; DONE? is answered YES once free (keep it in waiting meanwhile); malformed or unknown: "ERR ..." | fr: contrôle : FREE? répond YES et réserve seulement si libre, sinon NO ; DONE? reçoit YES une fois libre (le garder dans waiting) ; invalide ou inconnu : « ERR ... »
            todo("lab4.6", "the worker's control socket")
            # END TODO(lab4.6)
        if svc in r:
            c, _ = svc.accept()
            c.settimeout(1)
            # TODO(lab4.7): service: only when reserved; read "REQ text" (else "ERR ...", state free again); then busy = (c, "RESP " + text.upper(), now + work) and state "busy": the answer goes out when the work is done, above | fr: service : seulement si réservé ; lire « REQ texte » (sinon « ERR ... », de nouveau libre) ; puis busy = (c, "RESP " + TEXTE, now + work) et état « busy »
            todo("lab4.7", "the worker's requests")
            # END TODO(lab4.7)


def main():
    p = argparse.ArgumentParser(description="Lab 4: dispatcher and worker")
    p.add_argument("role", choices=["dispatcher", "worker"])
    p.add_argument("--dir", required=True)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--id", type=int, default=1)
    p.add_argument("--work-ms", type=int, default=0)
    a = p.parse_args()
    (dispatcher if a.role == "dispatcher" else worker)(a)


if __name__ == "__main__":
    sys.exit(main())
