// Lab 1's segment layout, shared by shm-main and shm-secondary (included with #[path]).
//
// offset 0     Header: two process-shared semaphores and a few atomic words
// offset 4096  data: DATA_LEN bytes (4 pages, so an unsynchronised copy can be caught halfway)

use ipclab::shm::Segment;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize};

pub const DATA_OFFSET: usize = 4096;
pub const DATA_LEN: usize = 4 * 4096;
pub const SEGMENT_LEN: usize = DATA_OFFSET + DATA_LEN;

#[repr(C)]
pub struct Header {
    /// Posted by main: a message is in `data`.
    pub request: libc::sem_t,
    /// Posted by the secondary: its answer replaced the message in `data`.
    pub reply: libc::sem_t,
    /// Length of the message in `data`.
    pub len: AtomicUsize,
    /// Set by main before its last post: no more messages.
    pub quit: AtomicU32,
    /// --no-sync: set by the secondary when it has made all its reads.
    pub done: AtomicU32,
}

const _: () = assert!(std::mem::size_of::<Header>() <= DATA_OFFSET);

pub fn header(seg: &Segment) -> *mut Header {
    seg.as_ptr().cast()
}

pub fn data(seg: &Segment) -> *mut u8 {
    // Safety (of callers' later use): DATA_OFFSET + DATA_LEN == SEGMENT_LEN, checked at open.
    seg.as_ptr().wrapping_add(DATA_OFFSET)
}

/// The data area as 64-bit atomic words, for the --no-sync race (atomics: no undefined
/// behaviour, but nothing orders a whole message either).
pub fn words(seg: &Segment) -> &[AtomicU64] {
    // Safety: the mapping is page-aligned, DATA_LEN bytes long from DATA_OFFSET, and lives as long
    // as `seg`; AtomicU64 allows shared mutation.
    unsafe { std::slice::from_raw_parts(data(seg).cast::<AtomicU64>(), DATA_LEN / 8) }
}

/// The header's atomic words (the semaphores are reached through raw pointers).
pub fn atomics(seg: &Segment) -> (&AtomicUsize, &AtomicU32, &AtomicU32) {
    let h = header(seg);
    // Safety: h points at a Header inside the live mapping; atomics allow shared access.
    unsafe { (&(*h).len, &(*h).quit, &(*h).done) }
}
