//! A training worker's spill file, and the queue where its feeder (the JVM task thread) and its trainer
//! thread meet.
//!
//! Memory: the first epoch's batches are written once, by the JVM, into the spill file: batch `i` lives at
//! `i * stride` and TensorFlow reads it in place (no copy). At most `num_slots` batches are mapped at a
//! time (backpressure: [`Spill::acquire`] blocks), so resident memory does not grow with the partition;
//! the file's pages go to disk. Later epochs map the whole file ([`Spill::replay`]) and replay it without
//! recomputing the Spark lineage. The file is unlinked as soon as it is created, so it disappears with its
//! descriptor even if the process dies.
//!
//! A window's life: acquired (mapped; the JVM writes it) -> submitted (fed) -> taken by the trainer
//! ([`Spill::next_fed`]) -> run -> released ([`Spill::release`]). Only the release unmaps it and lowers the
//! count of held windows that bounds the JVM, so the JVM never runs more than `num_slots` windows ahead.
//! Everything the two threads share is in one `Queue` under one lock.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use memmap2::{MmapMut, MmapOptions};

use crate::batch::too_big;
use crate::error::{Error, Result};

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

/// Where the feeder and the trainer meet.
#[derive(Default)]
struct Queue {
    /// The window the JVM is writing (acquired, not yet submitted).
    writing: Option<MmapMut>,
    fed: VecDeque<Fed>,
    /// Windows mapped and not yet released by the trainer: the backpressure count.
    held: usize,
    /// Index of the next window in the spill file.
    next: usize,
    input_done: bool,
    closing: bool,
    failure: Option<Error>,
}

/// The spill file and its queue, shared (behind an `Arc`) by the trainer handle and the trainer thread.
pub(crate) struct Spill {
    queue: Mutex<Queue>,
    changed: Condvar,
    file: File,
    path: PathBuf,
    stride: usize,
    num_slots: usize,
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
        let stride = batch_bytes.max(1).div_ceil(PAGE) * PAGE;
        let (file, path) = spill_file(dir)?;
        Ok(Spill {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
            file,
            path,
            stride,
            num_slots,
            batch_size,
        })
    }

    /// Bytes from one batch to the next in the file: a batch rounded up to whole pages.
    pub(crate) fn stride(&self) -> usize {
        self.stride
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(&self, q: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
        self.changed.wait(q).unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves disk for window `index` before mapping it: writing to a mapped page the disk cannot hold
    /// would raise SIGBUS and kill the JVM, while a failed reservation is an ordinary error.
    fn window(&self, index: usize) -> Result<MmapMut> {
        let offset = index
            .checked_mul(self.stride)
            .ok_or_else(|| too_big("spill"))?;
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
        // SAFETY: the file is ours alone (unlinked) and the range was just allocated. Populating maps every
        // page in the one call, rather than taking a page fault per page as the JVM writes the rows.
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
        let mut q = self.lock();
        loop {
            if let Some(e) = &q.failure {
                return Err(e.clone());
            }
            if q.closing || q.input_done {
                return Err(Error::Native("trainer input is already finished".into()));
            }
            if q.writing.is_some() {
                return Err(Error::Input(
                    "a batch is already being written; submit it first".into(),
                ));
            }
            if q.held < self.num_slots {
                break;
            }
            q = self.wait(q);
        }
        let map = self.window(q.next)?;
        let address = map.as_ptr() as i64;
        q.next += 1;
        q.held += 1;
        q.writing = Some(map);
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
        let mut q = self.lock();
        let map = q
            .writing
            .take()
            .ok_or_else(|| Error::Input("no batch was acquired".into()))?;
        q.fed.push_back(Fed {
            rows: rows as usize,
            map,
        });
        drop(q);
        self.changed.notify_all();
        Ok(())
    }

    /// Ends the input: a window acquired but not submitted is dropped, and once the trainer has run the
    /// fed ones, [`Self::next_fed`] says the epoch's input is over.
    pub(crate) fn end_input(&self) {
        {
            let mut q = self.lock();
            if q.writing.take().is_some() {
                q.held -= 1;
            }
            q.input_done = true;
        }
        self.changed.notify_all();
    }

    /// Wakes every wait for good: a blocked [`Self::acquire`] fails, and so does the trainer's next wait.
    pub(crate) fn close(&self) {
        self.lock().closing = true;
        self.changed.notify_all();
    }

    /// Records why the trainer stopped, for the feeder's next [`Self::acquire`]; the first failure stays.
    pub(crate) fn fail(&self, e: &Error) {
        let mut q = self.lock();
        q.failure.get_or_insert_with(|| e.clone());
        drop(q);
        self.changed.notify_all();
    }

    // The trainer's side.

    /// The next fed window for epoch 1, or `None` once the JVM has finished and everything ran.
    pub(crate) fn next_fed(&self) -> Result<Option<Fed>> {
        let mut q = self.lock();
        loop {
            if q.closing {
                return Err(closed());
            }
            if let Some(fed) = q.fed.pop_front() {
                return Ok(Some(fed));
            }
            if q.input_done {
                return Ok(None);
            }
            q = self.wait(q);
        }
    }

    /// Unmaps a window the trainer has run and lets the JVM map another.
    pub(crate) fn release(&self, fed: Fed) {
        drop(fed);
        self.lock().held -= 1;
        self.changed.notify_all();
    }

    /// Fails once the trainer was closed: replayed epochs wait on nothing, so they ask between steps.
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.lock().closing {
            return Err(closed());
        }
        Ok(())
    }

    /// Maps the first `batches` windows at once, for the epochs that replay the file. Every one of them
    /// must have been written in epoch 1.
    pub(crate) fn replay(&self, batches: usize) -> Result<MmapMut> {
        // SAFETY: the file is ours alone (unlinked), and every window in the range was written in epoch 1.
        unsafe {
            MmapOptions::new()
                .len(batches * self.stride)
                .map_mut(&self.file)
        }
        .map_err(|e| {
            Error::io(
                format!("mapping the spill file {} for replay", self.path.display()),
                e,
            )
        })
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
