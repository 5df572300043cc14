# ipclab — make labN runs lab N's narrated walkthrough; make test is what CI runs.
CARGO ?= cargo
BIN := target/debug
LABS := 1 2 3 4 5 6 7

.PHONY: all build test check lint lab1 lab2 lab3 lab4 lab5 lab6 lab7 strace-lab1 strace-lab2 strace-lab3 strace-lab4 strace-lab5 strace-lab6 strace-lab7 bench static package-gradescope package-classroom grade bench-grade bench-restart bench-lab4 clean doctor help

all: build

build:
	$(CARGO) build --workspace --bins --lib

# Tests fork and some are subreapers: one binary per lab, one test at a time within it.
test: build
	$(CARGO) test --workspace --lib --bins --tests -- --test-threads=1

check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --test course

lab1 lab2 lab3 lab4 lab5 lab6 lab7: build
	$(BIN)/ipclab lab $(@:lab%=%)

# A lab's reference under strace, normalised (roles, DIR, times in ms), checked against
# labs/labN-*/strace.expected, with its sequence chart in target/trace/labN.svg.
strace-lab1 strace-lab2 strace-lab3 strace-lab4 strace-lab5 strace-lab6 strace-lab7: build
	$(BIN)/ipclab trace $(@:strace-lab%=%) --check --chart --svg target/trace/$(@:strace-%=%).svg

# The references must pass their own contracts.
grade: build
	$(BIN)/ipclab grade all

# Lab 7: the whole zoo (release build), then the five C twins beside their Rust counterparts,
# interleaved, pinned (same CPU, then two CPUs; unpinned placement is the scheduler's coin toss
# and would compare placements, not code): Rust/C ratios of medians with min/max over the pairs.
bench:
	$(CARGO) build --release --workspace --bins
	mkdir -p target/bench
	$${CC:-cc} -O2 -Wall -o target/bench/twins bench/twins.c
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
	@echo "make lab1 .. lab7           run a lab's walkthrough"
	@echo "make strace-lab1 .. 6     a lab's reference under strace, normalised, with its chart"
	@echo "make test                 build and run every test (what CI runs)"
	@echo "make check                rustfmt, clippy -D warnings, course lint"
	@echo "make grade                grade the reference programs (ipclab grade all)"
	@echo "make bench                the IPC zoo, and the Rust/C ratios against bench/twins.c"
	@echo "make bench-grade|bench-restart|bench-lab4   measurements (release build)"
	@echo "make package-gradescope LAB=N   the autograder zip (static binaries; make package-classroom too)"
	@echo "make doctor               what works on this machine"
	@echo "make clean                remove stale ipclab objects and build output"
