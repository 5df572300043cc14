#!/usr/bin/python3
"""Lab 8 starter: a UDP and a TCP server and client, one program, the role as first argument.

The lab text: labs/lab8-sockets/README.md (the grading contract is at its end).
Run it:   python3 main.py udp-server --port 9875 &  python3 main.py udp-client --host 127.0.0.1 --port 9875 --message hi
Grade it: make grade
Do the TODOs in order: each one not done stops the program and says which it is.
"""
import argparse
import socket
import sys


def todo(tag, what):
    sys.exit(f"TODO({tag}) not done: {what} (see README.md)")


def bind(sock, role, port):
    """Binds every address on `port`; a port in use (or refused) is one line and exit 1."""
    # TODO(lab8.1): sock.bind(("", port)); on OSError print "ROLE: bind port P: REASON" on stderr, close, sys.exit(1) | fr: sock.bind(("", port)) ; sur OSError afficher « ROLE: bind port P: RAISON » sur stderr, fermer, sys.exit(1)
    todo("lab8.1", "bind the port, or say why not in one line")
    # END TODO(lab8.1)


def udp_server(a):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bind(sock, "udp-server", a.port)
    # TODO(lab8.2): loop: recvfrom(2048), print the text and the source "IP:PORT" (flush), sendto(b"OK", source) | fr: boucle : recvfrom(2048), afficher le texte et la source « IP:PORT » (flush), sendto(b"OK", source)
    todo("lab8.2", "receive, show the source, answer OK")
    # END TODO(lab8.2)


def udp_client(a):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # TODO(lab8.3): sendto the message to (host, port), wait for the answer (settimeout(5), recvfrom), print it, close | fr: sendto du message vers (hôte, port), attendre la réponse (settimeout(5), recvfrom), l'afficher, fermer
    todo("lab8.3", "send a datagram, print the answer")
    # END TODO(lab8.3)


def serve(conn, addr):
    """One client: a line in, OK out, until it closes (recv returns b"") or vanishes (reset)."""
    # TODO(lab8.4): loop on recv(1024): b"" means the client closed: close conn, return; ConnectionResetError: close, return; for each whole line received print it and sendall(b"OK\n") | fr: boucle sur recv(1024) : b"" veut dire que le client a fermé : fermer conn, rendre ; ConnectionResetError : fermer, rendre ; pour chaque ligne entière reçue l'afficher et sendall(b"OK\n")
    todo("lab8.4", "serve one client until it closes")
    # END TODO(lab8.4)


def tcp_server(a):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    bind(sock, "tcp-server", a.port)
    # TODO(lab8.5): listen(5), then forever: conn, addr = accept(); serve(conn, addr) | fr: listen(5), puis sans fin : conn, addr = accept() ; serve(conn, addr)
    todo("lab8.5", "listen and accept")
    # END TODO(lab8.5)


def tcp_client(a):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # TODO(lab8.6): connect, sendall(message + "\n"), recv until a newline (or b""), print the answer, close first | fr: connect, sendall(message + "\n"), recv jusqu'à un saut de ligne (ou b""), afficher la réponse, fermer en premier
    todo("lab8.6", "connect, send a line, print the answer, close")
    # END TODO(lab8.6)


def main():
    p = argparse.ArgumentParser(description="Lab 8: UDP and TCP client-server")
    p.add_argument("role", choices=["udp-server", "udp-client", "tcp-server", "tcp-client"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--message", default=socket.gethostname())
    a = p.parse_args()
    {"udp-server": udp_server, "udp-client": udp_client,
     "tcp-server": tcp_server, "tcp-client": tcp_client}[a.role](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
