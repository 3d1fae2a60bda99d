//! A training worker's spill file, and the queue where its feeder (the JVM task thread) and its trainer
//! thread meet.
//!
//! Memory: the first epoch's batches are written once, by the JVM, into the spill file: batch `i` lives at
//! `i * stride` and TensorFlow reads it in place (no copy). At most `num_slots` batches are mapped at a
//! time (backpressure: [`Spill::acquire`] blocks), so resident memory does not grow with the partition;
//! the file's pages go to disk. Later epochs replay it without recomputing the Spark lineage, mapping one
//! window at a time ([`Spill::replay`]), so they too hold one window's pages whatever the partition
//! size. The file is unlinked as soon as it is created, so it disappears with its descriptor even if the
//! process dies.
//!
//! A window's life: acquired (mapped; the JVM writes it) -> submitted (fed) -> taken by the trainer
//! ([`Spill::next_fed`]) -> run -> released ([`Spill::release`]). Acquiring takes one of `num_slots`
//! credits and only the release gives it back, so the JVM never runs more than `num_slots` windows ahead.
//!
//! The two sides meet in two crossbeam channels (fed windows one way, credits back), not in actor
//! mailboxes: a batch takes about 0.5 ms of TensorFlow, and a message through actix costs tens of
//! microseconds against under one for a channel (docs/choices.md, "Actors"). Each window is written once by the
//! JVM and then handed over whole, so nothing is shared under a lock.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use memmap2::{MmapMut, MmapOptions};

use crate::error::{Error, Result};
use crate::layout;

/// Windows of the spill file are mapped at page-aligned offsets.
const PAGE: usize = 4096;

/// A window the JVM has filled and the trainer has not yet run.
pub(crate) struct Fed {
    /// Rows the JVM wrote into the window.
    pub(crate) rows: usize,
    map: MmapMut,
}

impl Fed {
    /// Where the batch starts; mapped until the window goes back through [`Spill::release`].
    pub(crate) fn base(&self) -> *mut u8 {
        self.map.as_ptr() as *mut u8
    }
}

/// What the trainer takes from the feeder's channel.
enum Feed {
    Batch(Fed),
    /// The JVM has no more rows of one part of epoch 1: of the training data (`last` false, with
    /// validation data to follow) or of everything (`last` true).
    End {
        last: bool,
    },
    /// The trainer was closed or failed: look at the flags.
    Wake,
}

/// The JVM task thread's side: the window it is writing and where the next one goes. Behind a lock only
/// so that the handle is shared; the one task thread that feeds never contends for it.
#[derive(Default)]
struct Feeding {
    /// The window the JVM is writing (acquired, not yet submitted).
    writing: Option<MmapMut>,
    /// Index of the next window in the spill file.
    next: usize,
    /// The training part ended: the windows that follow hold validation data.
    training_done: bool,
    input_done: bool,
}

/// The spill file and its channels, shared (behind an `Arc`) by the trainer handle and the trainer actor.
pub(crate) struct Spill {
    feeding: Mutex<Feeding>,
    /// One credit per window the JVM may map at a time.
    credits: (Sender<()>, Receiver<()>),
    fed: (Sender<Feed>, Receiver<Feed>),
    closing: AtomicBool,
    /// The trainer's side: it took the last [`Feed::End`], so every later [`Self::next_fed`] answers `None`.
    ended: AtomicBool,
    /// Why the trainer stopped, for the feeder's next [`Self::acquire`]; the first failure stays.
    failure: OnceLock<Error>,
    file: File,
    path: PathBuf,
    stride: usize,
    batch_size: usize,
}

impl Spill {
    /// Creates the spill file in `dir` (the system's temporary directory when empty) for batches of at
    /// most `batch_size` rows in `batch_bytes` bytes, of which at most `num_slots` are mapped at a time.
    pub(crate) fn create(
        dir: &Path,
        batch_bytes: usize,
        batch_size: usize,
        num_slots: usize,
    ) -> Result<Spill> {
        let stride = layout::stride(batch_bytes, PAGE)?;
        let (file, path) = spill_file(dir)?;
        Ok(Spill::over(file, path, stride, batch_size, num_slots))
    }

    /// Like [`Self::create`], but at `path`, which stays until the caller removes it: another process (a
    /// script that [`crate::script_feed`] feeds) opens the file by name.
    pub(crate) fn create_named(
        path: &Path,
        batch_bytes: usize,
        batch_size: usize,
        num_slots: usize,
    ) -> Result<Spill> {
        let stride = layout::stride(batch_bytes, PAGE)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| Error::io(format!("creating spill file {}", path.display()), e))?;
        Ok(Spill::over(
            file,
            path.to_path_buf(),
            stride,
            batch_size,
            num_slots,
        ))
    }

    /// A spill over `file` whose windows are `stride` bytes (whole pages) apart.
    fn over(
        file: File,
        path: PathBuf,
        stride: usize,
        batch_size: usize,
        num_slots: usize,
    ) -> Spill {
        let credits = bounded(num_slots);
        for _ in 0..num_slots {
            let _ = credits.0.send(());
        }
        Spill {
            feeding: Mutex::default(),
            credits,
            fed: unbounded(),
            closing: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            failure: OnceLock::new(),
            file,
            path,
            stride,
            batch_size,
        }
    }

    /// Where the file was created.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes from one batch to the next in the file: a batch rounded up to whole pages.
    pub(crate) fn stride(&self) -> usize {
        self.stride
    }

    fn feeding(&self) -> MutexGuard<'_, Feeding> {
        // A panic while holding the lock leaves consistent state behind: keep going.
        self.feeding.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fails once the trainer failed (with its failure) or was closed.
    fn check_running(&self) -> Result<()> {
        if let Some(e) = self.failure.get() {
            return Err(e.clone());
        }
        if self.closing.load(Ordering::Acquire) {
            return Err(Error::Native("trainer input is already finished".into()));
        }
        Ok(())
    }

    /// Wakes both sides' waits for good.
    fn wake(&self) {
        self.closing.store(true, Ordering::Release);
        let _ = self.credits.0.try_send(());
        let _ = self.fed.0.send(Feed::Wake);
    }

    /// Reserves disk for window `index` before mapping it: writing to a mapped page the disk cannot hold
    /// would raise SIGBUS and kill the JVM, while a failed reservation is an ordinary error.
    fn window(&self, index: usize) -> Result<MmapMut> {
        let offset = layout::slot_offset(index, self.stride, "spill")?;
        // SAFETY: a valid open descriptor; the range is checked by the kernel.
        let rc = unsafe {
            libc::posix_fallocate(
                self.file.as_raw_fd(),
                offset as libc::off_t,
                self.stride as libc::off_t,
            )
        };
        if rc != 0 {
            return Err(Error::io(
                format!(
                    "spill file {}: cannot reserve {} bytes for batch {index}",
                    self.path.display(),
                    self.stride
                ),
                std::io::Error::from_raw_os_error(rc),
            ));
        }
        self.map_window(index, offset)
    }

    /// Maps window `index`, at `offset`, which holds allocated bytes. Populating maps every page in
    /// the one call, rather than a page fault per page as the JVM writes rows or TensorFlow reads them.
    fn map_window(&self, index: usize, offset: usize) -> Result<MmapMut> {
        // SAFETY: the file is ours alone (unlinked) and the range is allocated (by `window`).
        unsafe {
            MmapOptions::new()
                .offset(offset as u64)
                .len(self.stride)
                .populate()
                .map_mut(&self.file)
        }
        .map_err(|e| {
            Error::io(
                format!("mapping spill batch {index} of {}", self.path.display()),
                e,
            )
        })
    }

    // The feeder's side: the JVM task thread.

    /// Maps the next batch window and returns its address; blocks while `num_slots` windows are held.
    pub(crate) fn acquire(&self) -> Result<i64> {
        self.check_running()?;
        {
            let f = self.feeding();
            if f.input_done {
                return Err(Error::Native("trainer input is already finished".into()));
            }
            if f.writing.is_some() {
                return Err(Error::Input(
                    "a batch is already being written; submit it first".into(),
                ));
            }
        }
        // The backpressure wait; close and failure wake it with a credit of their own.
        let _ = self.credits.1.recv();
        self.check_running()?;
        let mut f = self.feeding();
        let map = match self.window(f.next) {
            Ok(map) => map,
            Err(e) => {
                let _ = self.credits.0.try_send(());
                return Err(e);
            }
        };
        let address = map.as_ptr() as i64;
        f.next += 1;
        f.writing = Some(map);
        Ok(address)
    }

    /// Hands the written window, holding `rows` rows, to the trainer.
    pub(crate) fn submit(&self, rows: i32) -> Result<()> {
        if rows < 1 || rows as usize > self.batch_size {
            return Err(Error::Input(format!(
                "{rows} rows do not fit a batch of 1..={} rows",
                self.batch_size
            )));
        }
        let map = self
            .feeding()
            .writing
            .take()
            .ok_or_else(|| Error::Input("no batch was acquired".into()))?;
        let _ = self.fed.0.send(Feed::Batch(Fed {
            rows: rows as usize,
            map,
        }));
        Ok(())
    }

    /// Ends the input: a window acquired but not submitted is dropped, and once the trainer has run the
    /// fed ones, [`Self::next_fed`] says the epoch's input is over.
    pub(crate) fn end_input(&self) {
        let mut f = self.feeding();
        if f.writing.take().is_some() {
            let _ = self.credits.0.try_send(());
        }
        if !std::mem::replace(&mut f.input_done, true) {
            let _ = self.fed.0.send(Feed::End { last: true });
        }
    }

    /// Ends the training part of the input: the windows acquired from now on hold validation data, and
    /// once the trainer has run the fed training windows, [`Self::next_fed`] answers `None` once.
    pub(crate) fn end_training_part(&self) -> Result<()> {
        let mut f = self.feeding();
        if f.writing.is_some() {
            return Err(Error::Input(
                "a batch is being written; submit it before ending the training data".into(),
            ));
        }
        if f.input_done || std::mem::replace(&mut f.training_done, true) {
            return Err(Error::Input("the training data already ended".into()));
        }
        let _ = self.fed.0.send(Feed::End { last: false });
        Ok(())
    }

    /// Wakes every wait for good: a blocked [`Self::acquire`] fails, and so does the trainer's next wait.
    pub(crate) fn close(&self) {
        self.wake();
    }

    /// Records why the trainer stopped, for the feeder's next [`Self::acquire`]; the first failure stays.
    pub(crate) fn fail(&self, e: &Error) {
        let _ = self.failure.set(e.clone());
        self.wake();
    }

    // The trainer's side.

    /// The next fed window for epoch 1, or `None` at the end of a part (the training data, then
    /// everything) and, after the last, at every call.
    pub(crate) fn next_fed(&self) -> Result<Option<Fed>> {
        self.check_open()?;
        if self.ended.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match self.fed.1.recv() {
            Ok(Feed::Batch(fed)) => {
                self.check_open()?;
                Ok(Some(fed))
            }
            Ok(Feed::End { last }) => {
                self.ended.store(last, Ordering::Relaxed);
                Ok(None)
            }
            Ok(Feed::Wake) | Err(_) => Err(closed()),
        }
    }

    /// Unmaps a window the trainer has run and lets the JVM map another.
    pub(crate) fn release(&self, fed: Fed) {
        drop(fed);
        let _ = self.credits.0.try_send(());
    }

    /// Fails once the trainer was closed: replayed epochs wait on nothing, so they ask between steps.
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closing.load(Ordering::Acquire) {
            return Err(closed());
        }
        Ok(())
    }

    /// Maps window `index` (holding `rows` rows) again, for the epochs that replay the file; it must
    /// have been written in epoch 1. One window at a time, unmapped after its step: a mapping of the
    /// whole file would keep every page it touched resident, so the process's RSS would grow with the
    /// partition (YARN and Kubernetes count those file pages); unmapped, they are only page cache.
    pub(crate) fn replay(&self, index: usize, rows: usize) -> Result<Fed> {
        let offset = layout::slot_offset(index, self.stride, "spill")?;
        // The window was written in epoch 1.
        let map = self.map_window(index, offset)?;
        Ok(Fed { rows, map })
    }
}

fn closed() -> Error {
    Error::Native("trainer closed while training".into())
}

/// Creates the spill file in `dir` and unlinks it at once: it lives exactly as long as its descriptor.
fn spill_file(dir: &Path) -> Result<(File, PathBuf)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = if dir.as_os_str().is_empty() {
        std::env::temp_dir()
    } else {
        dir.to_path_buf()
    };
    let path = dir.join(format!(
        "spindle-spill-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::io(format!("creating spill file {}", path.display()), e))?;
    // The open descriptor keeps the data; only the name goes.
    let _ = std::fs::remove_file(&path);
    Ok((file, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident bytes of this process's mappings of `path` (their `Rss` in /proc/self/smaps): the file
    /// pages that YARN and Kubernetes count against the executor.
    fn resident(path: &Path) -> usize {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let name = path.to_str().unwrap();
        let (mut ours, mut kib) = (false, 0);
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if !first.ends_with(':') {
                // A mapping's header: "start-end perms offset dev inode path".
                ours = line.contains(name);
            } else if let Some(rss) = line.strip_prefix("Rss:").filter(|_| ours) {
                kib += rss
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<usize>()
                    .unwrap();
            }
        }
        kib * 1024
    }

    #[test]
    fn replay_keeps_one_window_resident_whatever_the_file_size() {
        const WINDOWS: usize = 64;
        const BYTES: usize = 1 << 20;
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::create(dir.path(), BYTES, 1, 2).unwrap();
        // Epoch 1: the JVM writes each window, the trainer takes and releases it.
        for i in 0..WINDOWS {
            let base = spill.acquire().unwrap() as *mut u8;
            // SAFETY: the acquired window is BYTES long and ours until submitted.
            unsafe { std::ptr::write_bytes(base, i as u8, BYTES) };
            spill.submit(1).unwrap();
            let fed = spill.next_fed().unwrap().unwrap();
            spill.release(fed);
        }
        spill.end_input();
        assert!(spill.next_fed().unwrap().is_none());
        assert_eq!(resident(spill.path()), 0, "released windows stay mapped");

        // Replays read every page of every window, as TensorFlow does; only the held one is resident.
        for i in (0..WINDOWS).rev() {
            let fed = spill.replay(i, 1).unwrap();
            // SAFETY: the replayed window is BYTES long and mapped while `fed` lives.
            let window = unsafe { std::slice::from_raw_parts(fed.base(), BYTES) };
            assert!(window.iter().all(|&b| b == i as u8), "window {i} read back");
            let held = resident(spill.path());
            assert!(
                (BYTES..2 * BYTES).contains(&held),
                "window {i}: {held} bytes of the spill file resident, expected one window of {BYTES}"
            );
            spill.release(fed);
        }
        assert_eq!(resident(spill.path()), 0, "replayed windows stay mapped");
    }
}
