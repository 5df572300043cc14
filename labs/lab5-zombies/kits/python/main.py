#!/usr/bin/python3
"""Lab 5 starter: fork M children, reap them all, report each one's status.

The lab text: labs/lab5-zombies/README.md (the grading contract is at its end).
Run it:   python3 main.py --children 5
Grade it: make grade
Do the TODOs in order: each one not done stops the program and says which it is.
"""
import argparse
import os
import sys


def todo(tag, what):
    sys.exit(f"TODO({tag}) not done: {what} (see README.md)")


def main():
    p = argparse.ArgumentParser(description="Lab 5: children, zombies, reaping")
    p.add_argument("--children", type=int, required=True)
    a = p.parse_args()
    index = {}  # pid -> i
    status = {}  # i -> exit status
    sys.stdout.flush()  # a forked child must not print main's buffered output again
    # TODO(lab5.1): fork the M children; child i exits at once with status i (os._exit(i)); record index[pid] = i | fr: créer les M enfants ; l'enfant i sort aussitôt avec le code i (os._exit(i)) ; noter index[pid] = i
    todo("lab5.1", "fork the children")
    # END TODO(lab5.1)
    # TODO(lab5.2): reap them all: os.waitpid(-1, 0) in a loop until ChildProcessError; status[index[pid]] = os.waitstatus_to_exitcode(st) | fr: les récupérer tous : os.waitpid(-1, 0) en boucle jusqu'à ChildProcessError
    todo("lab5.2", "reap every child in a waitpid loop")
    # END TODO(lab5.2)
    # TODO(lab5.3): print "child i exited with status s" once per child (flush), then return 0 | fr: afficher « child i exited with status s » pour chaque enfant, puis renvoyer 0
    todo("lab5.3", "report each child")
    # END TODO(lab5.3)


if __name__ == "__main__":
    sys.exit(main())
