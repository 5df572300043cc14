//! A heartbeat table in POSIX shared memory: one slot per supervised process, written by the
//! process (its first and its last CLOCK_MONOTONIC time in ms), read by its supervisor. A process that stops
//! writing is hung — something waitpid cannot tell, since a hung process has not exited.

use crate::error::Result;
use crate::shm::Segment;
use std::sync::atomic::{AtomicU64, Ordering};

/// Milliseconds on CLOCK_MONOTONIC: the same clock in every process of the machine.
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // Safety: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// The options every supervised program takes from the lab 3 watchdog (`#[command(flatten)]`):
/// its heartbeat table, its slot there, the period.
#[derive(Debug, Clone, clap::Args)]
pub struct HeartbeatArgs {
    /// Heartbeat table (shm name); none: not supervised.
    #[arg(long)]
    pub table: Option<String>,
    /// This process's slot in the table.
    #[arg(long, default_value_t = 0)]
    pub slot: usize,
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub heartbeat_ms: u64,
}

impl HeartbeatArgs {
    /// The table, for a program that runs only under the watchdog.
    pub fn table(&self) -> Result<Table> {
        match &self.table {
            Some(t) => Table::open(t),
            None => Err(crate::error::Error::usage(
                "--table: this server runs under the watchdog (ipclab lab 3)",
            )),
        }
    }

    /// A beater on the table, if there is one.
    pub fn beater(&self) -> Result<Beater> {
        Beater::new(self.table.as_deref(), self.slot, self.heartbeat_ms)
    }
}

pub struct Table {
    seg: Segment,
    slots: usize,
}

impl Table {
    /// Creates the table (the supervisor owns and unlinks it).
    pub fn create(name: &str, slots: usize) -> Result<Table> {
        let seg = Segment::create(name, (slots * 16).max(4096))?;
        Ok(Table { seg, slots })
    }

    /// Opens the supervisor's table (a supervised process).
    pub fn open(name: &str) -> Result<Table> {
        let seg = Segment::open(name)?;
        let slots = seg.len() / 16;
        Ok(Table { seg, slots })
    }

    fn words(&self) -> &[AtomicU64] {
        let w = self.seg.words();
        &w[..w.len().min(self.slots * 2)]
    }

    /// Records a heartbeat in `slot` (out of range: ignored); the first one is kept apart.
    pub fn beat(&self, slot: usize) {
        let t = now_ms();
        if let (Some(last), Some(first)) =
            (self.words().get(2 * slot), self.words().get(2 * slot + 1))
        {
            let _ = first.compare_exchange(0, t, Ordering::AcqRel, Ordering::Relaxed);
            last.store(t, Ordering::Release);
        }
    }

    /// Last heartbeat of `slot`, 0 if none yet.
    pub fn last(&self, slot: usize) -> u64 {
        self.words()
            .get(2 * slot)
            .map(|w| w.load(Ordering::Acquire))
            .unwrap_or(0)
    }

    /// First heartbeat of `slot` since it was cleared, 0 if none yet.
    pub fn first(&self, slot: usize) -> u64 {
        self.words()
            .get(2 * slot + 1)
            .map(|w| w.load(Ordering::Acquire))
            .unwrap_or(0)
    }

    /// Forgets `slot`'s heartbeats (before starting its replacement).
    pub fn clear(&self, slot: usize) {
        for i in [2 * slot, 2 * slot + 1] {
            if let Some(w) = self.words().get(i) {
                w.store(0, Ordering::Release);
            }
        }
    }

    pub fn name(&self) -> &str {
        self.seg.name()
    }

    pub fn unlink(&mut self) -> Result<()> {
        self.seg.unlink()
    }
}

/// A supervised server's side: beats at once (before it opens anything else, so a restart is
/// seen even if the rest is stuck), then every `period` when `tick` is called from its loop.
pub struct Beater {
    table: Option<Table>,
    slot: usize,
    period_ms: u64,
    next: u64,
}

impl Beater {
    /// No table: not supervised, `tick` does nothing and never shortens a wait.
    pub fn new(table: Option<&str>, slot: usize, period_ms: u64) -> Result<Beater> {
        let table = table.map(Table::open).transpose()?;
        let mut b = Beater {
            table,
            slot,
            period_ms: period_ms.max(1),
            next: 0,
        };
        b.tick();
        Ok(b)
    }

    pub fn tick(&mut self) {
        let Some(t) = &self.table else { return };
        if now_ms() >= self.next {
            t.beat(self.slot);
            self.next = now_ms() + self.period_ms;
        }
    }

    /// How long the caller may wait before the next beat is due (None: unsupervised).
    pub fn wait(&self) -> Option<std::time::Duration> {
        self.table.as_ref()?;
        Some(std::time::Duration::from_millis(
            self.next.saturating_sub(now_ms()),
        ))
    }
}
