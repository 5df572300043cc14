# ipclab — make labN runs lab N's narrated walkthrough; make test is what CI runs.
CARGO ?= cargo
# .ci/budget reads TOML with tomllib: Python 3.11 or later.
PYTHON ?= python3
BIN := target/debug
# The labs are the folders labs/labN-name/ (the registry in src/labs.rs lists the same: the course
# lint checks it): their numbers, in order.
LABS := $(shell ls -d labs/lab*-*/ | sed 's|labs/lab\([0-9]*\)-.*|\1|' | sort -n)

.PHONY: all build test soak check fmt bench static package-gradescope package-classroom grade bench-grade bench-restart bench-lab4 bench-hosts clean doctor help

all: build

build:
	$(CARGO) build --workspace --bins --lib

# Tests fork and some are subreapers: one binary per lab, one test at a time within it (and a
# fork guard, tests/common). Each test binary is timed against its budget (.ci/budget).
test: build
	$(CARGO) test --workspace --lib --bins --tests --no-run
	$(PYTHON) .ci/budget

# Long runs kept out of make test: every contract 20 times, with and without race injection,
# and the class graded over and over.
soak: build
	$(BIN)/ipclab grade all --runs 20
	$(BIN)/ipclab grade all --runs 20 --race
	$(CARGO) test --test grade_class -- --ignored --test-threads=1

check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	rustfmt --edition 2021 --check labs/*/mod.rs
	$(CARGO) test --test course

# rustfmt does not follow the registry's macro into labs/: they are formatted by name.
fmt:
	$(CARGO) fmt --all
	rustfmt --edition 2021 labs/*/mod.rs

# make labN: lab N's walkthrough.
lab%: build
	@case " $(LABS) " in *" $* "*) ;; *) echo "no lab $*: labs are $(LABS)"; exit 2;; esac
	$(BIN)/ipclab lab $*

# A lab's reference under strace, normalised (roles, DIR, times in ms), checked against
# labs/labN-*/strace.expected, with its sequence chart in target/trace/labN.svg.
strace-lab%: build
	@case " $(LABS) " in *" $* "*) ;; *) echo "no lab $*: labs are $(LABS)"; exit 2;; esac
	$(BIN)/ipclab trace $* --check --chart --svg target/trace/lab$*.svg

# The references must pass their own contracts.
grade: build
	$(BIN)/ipclab grade all

# Lab 7: the whole zoo (release build), then the five C twins beside their Rust counterparts,
# interleaved, pinned (same CPU, then two CPUs; unpinned placement is the scheduler's coin toss
# and would compare placements, not code): Rust/C ratios of medians with min/max over the pairs.
bench:
	$(CARGO) build --release --workspace --bins
	mkdir -p target/bench
	$${CC:-cc} -O2 -Wall -pthread -o target/bench/twins bench/twins.c
	target/release/ipclab bench --round-trips 5000 --svg target/bench/zoo.svg
	target/release/ipclab bench --compare-c target/bench/twins --size 64 --round-trips 5000 --pairs 7 --pin split
	target/release/ipclab bench --compare-c target/bench/twins --size 64 --round-trips 5000 --pairs 7 --pin same

# What grading adds to a lab 2 run, measured side by side with the bare run.
bench-grade:
	$(CARGO) build --release --workspace
	$(CARGO) bench --bench grade_overhead

# Lab 3: kill() to the replacement's first heartbeat, over 100 kills.
bench-restart:
	$(CARGO) build --release --workspace
	$(CARGO) bench --bench restart_latency

# Lab 4: requests per second with 50 concurrent clients.
bench-lab4:
	$(CARGO) build --release --workspace
	$(CARGO) bench --bench lab4_throughput

# Root: hosts up/down for K = 2..16, and the relay's cost on a round trip as a ratio.
bench-hosts:
	$(CARGO) bench --bench hosts

# Self-contained binaries for grading images without a Rust toolchain (static glibc).
STATIC := target/x86_64-unknown-linux-gnu/release
static:
	RUSTFLAGS="-C target-feature=+crt-static -C strip=debuginfo" $(CARGO) build --release --target x86_64-unknown-linux-gnu --bin ipclab --bin watchdog --bin dispatcher --bin worker

# make package-gradescope LAB=2 / make package-classroom LAB=2 OUT=../template-repo
package-gradescope: static
	$(STATIC)/ipclab package gradescope $(LAB) --bin-dir $(STATIC) --output target/ipclab-gradescope-lab$(LAB).zip
package-classroom: static
	$(STATIC)/ipclab package classroom $(LAB) --bin-dir $(STATIC) --output $(or $(OUT),target/classroom-lab$(LAB))

doctor: build
	$(BIN)/ipclab doctor

clean:
	-$(BIN)/ipclab clean 2>/dev/null
	$(CARGO) clean

help:
	@echo "make labN                 lab N's walkthrough (N: $(LABS))"
	@echo "make strace-labN          lab N's reference under strace, normalised, with its chart"
	@echo "make test                 build and run every test, each binary within its budget (what CI runs)"
	@echo "make soak                 long runs: every contract 20 times, with race injection too"
	@echo "make check                rustfmt, clippy -D warnings, course lint (make fmt formats)"
	@echo "make grade                grade the reference programs (ipclab grade all)"
	@echo "make bench                the IPC zoo, and the Rust/C ratios against bench/twins.c"
	@echo "make bench-grade|bench-restart|bench-lab4   measurements (release build)"
	@echo "make bench-hosts          hosts up/down K=2..16, the relay's round-trip ratio (root)"
	@echo "make package-gradescope LAB=N   the autograder zip (static binaries; make package-classroom too)"
	@echo "make doctor               what works on this machine"
	@echo "make clean                remove stale ipclab objects and build output"
