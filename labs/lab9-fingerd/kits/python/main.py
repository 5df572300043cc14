#!/usr/bin/python3
"""Lab 9 starter: a finger daemon and its client, one program, the role as first argument.

The lab text: labs/lab9-fingerd/README.md (the grading contract is at its end).
Run it:   mkdir -m 700 d; python3 main.py fingerd --port 7979 --dir d; python3 main.py fingercli --login $USER --host 127.0.0.1 --port 7979
Grade it: make grade
Do the TODOs in order: each one not done stops the program and says which it is.
"""
import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import threading

# A login: letters, digits, _ . - (not first), at most 32. Anything else never reaches finger.
LOGIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")


def todo(tag, what):
    sys.exit(f"TODO({tag}) not done: {what} (see README.md)")


def listen(port):
    """A listening TCP socket on every address; a port in use is one line and exit 1."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # TODO(lab9.1): sock.bind(("", port)); on OSError print "fingerd: bind port P: REASON" on stderr and sys.exit(1); then sock.listen(16) | fr: sock.bind(("", port)) ; sur OSError afficher « fingerd: bind port P: RAISON » sur stderr et sys.exit(1) ; puis sock.listen(16)
    todo("lab9.1", "bind and listen, or say why not in one line")
    # END TODO(lab9.1)
    return sock


def daemonize(pidfile):
    """The launcher returns once the daemon runs: fork; the parent waits for the child's word
    on a pipe and exits 0; the child calls setsid, puts /dev/null on 0, 1, 2 and writes its pid."""
    # TODO(lab9.2): r, w = os.pipe(); if os.fork() > 0: os.close(w); os.read(r, 1); os._exit(0). Child: os.setsid(); dup2 /dev/null onto 0, 1, 2; write os.getpid() to pidfile; os.write(w, b"!"); os.close(w) | fr: r, w = os.pipe() ; si os.fork() > 0 : os.close(w) ; os.read(r, 1) ; os._exit(0). Enfant : os.setsid() ; dup2 de /dev/null sur 0, 1, 2 ; écrire os.getpid() dans pidfile ; os.write(w, b"!") ; os.close(w)
    todo("lab9.2", "become a daemon and write the pidfile")
    # END TODO(lab9.2)


def read_query(conn):
    """The query line (RFC 1288: up to CRLF), or None if it is not a login."""
    # TODO(lab9.3): recv until b"\n" is in the data (or b"", or over 512 bytes); keep what is before the first b"\n", strip b"\r" and spaces; None unless it decodes and LOGIN.fullmatch(it) | fr: recv jusqu'à avoir b"\n" (ou b"", ou plus de 512 octets) ; garder ce qui précède le premier b"\n", ôter b"\r" et les espaces ; None sauf si cela se décode et que LOGIN.fullmatch(cela)
    todo("lab9.3", "read the query line and check it is a login")
    # END TODO(lab9.3)


def answer(conn, addr, log, lock):
    """One client: its query, finger's answer (never through a shell), a log line, close."""
    login = read_query(conn)
    # TODO(lab9.4): with lock: log.write(f"{login!r} from {addr[0]}:{addr[1]}\n"); log.flush(). None: sendall(b"fingerd: not a login\r\n"). Else out = subprocess.run(["finger", "-l", "-m", "--", login], capture_output=True); sendall((out.stdout + out.stderr).replace(b"\n", b"\r\n")). Then close | fr: avec lock : log.write(f"{login!r} from {addr[0]}:{addr[1]}\n") ; log.flush(). None : sendall(b"fingerd: not a login\r\n"). Sinon out = subprocess.run(["finger", "-l", "-m", "--", login], capture_output=True) ; sendall((out.stdout + out.stderr).replace(b"\n", b"\r\n")). Puis fermer
    todo("lab9.4", "answer with finger's output from an argv, log, close")
    # END TODO(lab9.4)


def fingerd(a):
    pidfile = os.path.join(a.dir, "fingerd.pid")
    sock = listen(a.port)
    daemonize(pidfile)
    log = open(os.path.join(a.dir, "fingerd.log"), "a")
    lock = threading.Lock()
    # TODO(lab9.5): on SIGTERM remove pidfile and os._exit(0) (signal.signal); then forever: conn, addr = sock.accept(), a threading.Thread(target=answer, args=(conn, addr, log, lock), daemon=True) started per client | fr: sur SIGTERM supprimer pidfile et os._exit(0) (signal.signal) ; puis sans fin : conn, addr = sock.accept(), un threading.Thread(target=answer, args=(conn, addr, log, lock), daemon=True) lancé par client
    todo("lab9.5", "stop on SIGTERM; accept, a thread per client")
    # END TODO(lab9.5)


def fingercli(a):
    # TODO(lab9.6): socket.create_connection((host, port)); OSError: one line on stderr, sys.exit(1). sendall(login + "\r\n"); recv(4096) until b"", writing each piece to sys.stdout.buffer; close | fr: socket.create_connection((hôte, port)) ; OSError : une ligne sur stderr, sys.exit(1). sendall(login + "\r\n") ; recv(4096) jusqu'à b"", en écrivant chaque morceau sur sys.stdout.buffer ; fermer
    todo("lab9.6", "connect, send the login, print the whole answer")
    # END TODO(lab9.6)


def main():
    p = argparse.ArgumentParser(description="Lab 9: a finger daemon and its client")
    p.add_argument("role", choices=["fingerd", "fingercli"])
    p.add_argument("--port", type=int, default=7979)
    p.add_argument("--dir")
    p.add_argument("--login", default="")
    p.add_argument("--host", default="127.0.0.1")
    a = p.parse_args()
    if a.role == "fingerd" and not a.dir:
        p.error("fingerd needs --dir DIR (yours alone: mkdir -m 700 DIR)")
    {"fingerd": fingerd, "fingercli": fingercli}[a.role](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
