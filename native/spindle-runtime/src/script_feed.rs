//! Batches for a script process (`spindle.run`): the JVM writes a task's rows into windows of a spill
//! file, as it does for the trainer, and the script (Python's `spindle.data`) maps those windows and reads
//! them as NumPy arrays, without a copy or a pickle.
//!
//! The two sides meet on a Unix socket the JVM names; the spill file is `feed.spill` in the folder the
//! JVM names. Every message is little-endian `u64`s:
//! - runtime -> script: `[index, rows]` when window `index` (at `index * stride` in the file) holds
//!   `rows` rows; `[u64::MAX, windows]` once the JVM has written its last window.
//! - script -> runtime: `[index]` once the script no longer reads window `index`.
//!
//! Backpressure: the JVM maps at most `num_slots` windows at a time and a window's credit comes back only
//! with the script's release, so the JVM never runs more than `num_slots` windows ahead of the script.
//! Later epochs the script replays from the file itself, which stays until [`ScriptFeed::close`].
//! When the script hangs up (it ended, or read what it wanted), or the JVM sees its process exit
//! ([`ScriptFeed::hang_up`]), the JVM's next acquire says so with [`Acquired::ReaderGone`], a typed end
//! rather than an address the JVM could write to.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use spindle_proto::spindle::{DType, FeederLayout, ScriptFeedConfig};

use crate::error::{Error, Result};
use crate::layout::{self, Area, Cursor};
use crate::model::from_proto;
use crate::spill::{Fed, Spill};

/// The end-of-input marker in the index field of a runtime -> script message.
const END: u64 = u64::MAX;

/// What [`ScriptFeed::acquire`] gives the JVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// The address of a mapped window to write (a mapping is never at 0; `BatchWriter` refuses 0 anyway,
    /// for every batch it writes).
    Window(i64),
    /// The script hung up or its process exited: nothing reads what follows.
    ReaderGone,
}

/// One task's feed of a script process; one owner (the JVM's handle table), idempotent [`Self::close`].
pub struct ScriptFeed {
    spill: Arc<Spill>,
    layout: FeederLayout,
    socket: PathBuf,
    /// The script hung up: the JVM stops writing.
    gone: Arc<AtomicBool>,
    /// The script's connection once it came, for [`Self::close`] to shut.
    connection: Arc<Mutex<Option<UnixStream>>>,
    closed: AtomicBool,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl ScriptFeed {
    /// Lays out the inputs, creates `feed.spill` in `config.dir` and listens on `config.socket`.
    pub fn open(config: &ScriptFeedConfig) -> Result<ScriptFeed> {
        let batch = usize::try_from(config.batch_size)
            .ok()
            .filter(|b| *b > 0)
            .ok_or_else(|| {
                Error::Input(format!("batch size {} must be positive", config.batch_size))
            })?;
        let slots = usize::try_from(config.num_slots)
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| {
                Error::Input(format!("num_slots {} must be positive", config.num_slots))
            })?;
        let (areas, bytes) = lay_out(config, batch)?;
        let dir = Path::new(&config.dir);
        let spill = Arc::new(Spill::create_named(
            &dir.join("feed.spill"),
            bytes,
            batch,
            slots,
        )?);
        let socket = PathBuf::from(&config.socket);
        let listener = UnixListener::bind(&socket)
            .map_err(|e| Error::io(format!("listening on {}", socket.display()), e))?;
        let layout = FeederLayout {
            base_address: 0,
            slot_stride: spill.stride() as i64,
            num_slots: config.num_slots,
            ..layout::feeder_layout(areas.iter())
        };
        let gone = Arc::new(AtomicBool::new(false));
        let connection = Arc::default();
        let server = {
            let (spill, gone, connection) = (spill.clone(), gone.clone(), Arc::clone(&connection));
            std::thread::Builder::new()
                .name("spindle-script-feed".into())
                .spawn(move || serve(&listener, &spill, &gone, &connection))
                .map_err(|e| Error::Native(format!("starting the script feed's thread: {e}")))?
        };
        Ok(ScriptFeed {
            spill,
            layout,
            socket,
            gone,
            connection,
            closed: AtomicBool::new(false),
            server: Mutex::new(Some(server)),
        })
    }

    /// Where each input lies in a window, and the windows' stride in the file.
    pub fn layout(&self) -> &FeederLayout {
        &self.layout
    }

    /// Maps the next window, blocking while `num_slots` are held; [`Acquired::ReaderGone`] once the
    /// script has hung up or [`Self::hang_up`] was called.
    pub fn acquire(&self) -> Result<Acquired> {
        if self.gone.load(Ordering::Acquire) {
            return Ok(Acquired::ReaderGone);
        }
        match self.spill.acquire() {
            Ok(address) => Ok(Acquired::Window(address)),
            Err(_) if self.gone.load(Ordering::Acquire) => Ok(Acquired::ReaderGone),
            Err(e) => Err(e),
        }
    }

    /// The reader is gone (its process exited, or its task was killed), whether or not it ever
    /// connected: a blocked or later [`Self::acquire`] returns [`Acquired::ReaderGone`]. Windows stay
    /// mapped until [`Self::close`], so a JVM thread still writing one is safe. Idempotent.
    pub fn hang_up(&self) {
        reader_gone(&self.gone, &self.spill);
    }

    /// Hands the script the window acquired last, holding `rows` rows.
    pub fn submit(&self, rows: i32) -> Result<()> {
        self.spill.submit(rows)
    }

    /// Tells the script, after the windows submitted so far, that there are no more.
    pub fn end_input(&self) {
        self.spill.end_input();
    }

    /// Stops the feed, wakes every wait, and removes the socket and the spill file. Idempotent.
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.spill.close();
        let connection = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match connection {
            // Ends the wait for the script's releases.
            Some(c) => {
                let _ = c.shutdown(Shutdown::Both);
            }
            // Wakes an accept still waiting for the script.
            None => {
                let _ = UnixStream::connect(&self.socket);
            }
        }
        let server = self
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(server) = server {
            let _ = server.join();
        }
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(self.spill.path());
    }
}

impl Drop for ScriptFeed {
    fn drop(&mut self) {
        self.close();
    }
}

/// Checks that every input is one a script reads (fixed-width values, fixed row shapes) and places them
/// in a batch of `batch` rows ([`crate::layout`]); returns where each lies and the batch's bytes.
fn lay_out(config: &ScriptFeedConfig, batch: usize) -> Result<(Vec<Area>, usize)> {
    let mut cursor = Cursor::new(batch);
    let mut areas = Vec::with_capacity(config.inputs.len());
    for input in &config.inputs {
        let name = &input.name;
        let dtype = DType::try_from(input.dtype)
            .ok()
            .filter(|d| *d != DType::String)
            .and_then(from_proto)
            .ok_or_else(|| {
                Error::Input(format!(
                    "input '{name}': a script reads fixed-width dtypes only (not strings)"
                ))
            })?;
        if input.arena_bytes != 0
            || !input.example_features.is_empty()
            || input.row_shape.contains(&-1)
        {
            return Err(Error::Input(format!(
                "input '{name}': a script reads fixed-width rows only (no ragged rows or tf.Examples)"
            )));
        }
        areas.push(cursor.area(input, dtype)?);
    }
    Ok((areas, cursor.bytes()))
}

/// The feed's thread: waits for the script, then tells it each window the JVM submits, while a second
/// thread returns each window it releases. Both end when the feed closes or the script hangs up.
fn serve(
    listener: &UnixListener,
    spill: &Arc<Spill>,
    gone: &Arc<AtomicBool>,
    connection: &Mutex<Option<UnixStream>>,
) {
    let Ok((mut stream, _)) = listener.accept() else {
        return;
    };
    // Stored before the check, so that a close racing with the accept either finds it or is seen.
    *connection.lock().unwrap_or_else(PoisonError::into_inner) = stream.try_clone().ok();
    if spill.check_open().is_err() {
        return;
    }
    let held: Arc<Mutex<HashMap<u64, Fed>>> = Arc::default();
    let releases = match stream.try_clone() {
        Ok(reader) => {
            let (spill, gone, held) = (spill.clone(), gone.clone(), held.clone());
            std::thread::Builder::new()
                .name("spindle-script-feed releases".into())
                .spawn(move || take_releases(reader, &spill, &gone, &held))
        }
        Err(e) => Err(e),
    };
    if releases.is_err() {
        reader_gone(gone, spill);
        return;
    }
    let mut index = 0u64;
    loop {
        let message = match spill.next_fed() {
            Ok(Some(fed)) => {
                let rows = fed.rows as u64;
                // Held before the script hears of it: its release may come back at once.
                held.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(index, fed);
                index += 1;
                [index - 1, rows]
            }
            Ok(None) => [END, index],
            Err(_) => break,
        };
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&message[0].to_le_bytes());
        bytes[8..].copy_from_slice(&message[1].to_le_bytes());
        if stream.write_all(&bytes).is_err() || message[0] == END {
            break;
        }
    }
    if let Ok(handle) = releases {
        let _ = handle.join();
    }
}

/// Returns the windows the script releases until it hangs up; then the JVM's waits end.
fn take_releases(
    mut reader: UnixStream,
    spill: &Spill,
    gone: &AtomicBool,
    held: &Mutex<HashMap<u64, Fed>>,
) {
    let mut bytes = [0u8; 8];
    while reader.read_exact(&mut bytes).is_ok() {
        let fed = held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&u64::from_le_bytes(bytes));
        if let Some(fed) = fed {
            spill.release(fed);
        }
    }
    reader_gone(gone, spill);
}

/// Marks the reader gone, then wakes a JVM waiting for a credit and the feed's thread waiting for a window.
fn reader_gone(gone: &AtomicBool, spill: &Spill) {
    gone.store(true, Ordering::Release);
    spill.close();
}

#[cfg(test)]
mod tests {
    use super::*;
    use spindle_proto::spindle::InputLayout;

    fn config(dir: &Path) -> ScriptFeedConfig {
        ScriptFeedConfig {
            inputs: vec![
                InputLayout {
                    name: "x".into(),
                    dtype: DType::Float32 as i32,
                    row_shape: vec![3],
                    ..Default::default()
                },
                InputLayout {
                    name: "y".into(),
                    dtype: DType::Int64 as i32,
                    ..Default::default()
                },
            ],
            batch_size: 4,
            num_slots: 2,
            dir: dir.to_string_lossy().into_owned(),
            socket: dir.join("feed.sock").to_string_lossy().into_owned(),
        }
    }

    fn read_message(s: &mut UnixStream) -> [u64; 2] {
        let mut b = [0u8; 16];
        s.read_exact(&mut b).unwrap();
        [
            u64::from_le_bytes(b[..8].try_into().unwrap()),
            u64::from_le_bytes(b[8..].try_into().unwrap()),
        ]
    }

    #[test]
    fn lays_out_aligned_arrays() {
        let dir = tempfile::tempdir().unwrap();
        let feed = ScriptFeed::open(&config(dir.path())).unwrap();
        let layout = feed.layout();
        assert_eq!(layout.input_offsets, vec![0, 64]);
        assert_eq!(layout.row_bytes, vec![12, 8]);
        assert_eq!(layout.slot_stride, 4096);
        feed.close();
        assert!(!dir.path().join("feed.spill").exists());
        assert!(!dir.path().join("feed.sock").exists());
    }

    #[test]
    fn rejects_strings_and_ragged_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.inputs[1].dtype = DType::String as i32;
        let e = ScriptFeed::open(&c).err().unwrap().to_string();
        assert!(e.contains("'y'") && e.contains("strings"), "{e}");
        let mut c = config(dir.path());
        c.inputs[0].row_shape = vec![-1];
        let e = ScriptFeed::open(&c).err().unwrap().to_string();
        assert!(e.contains("'x'") && e.contains("ragged"), "{e}");
    }

    #[test]
    fn windows_reach_the_script_with_backpressure_and_end() {
        let dir = tempfile::tempdir().unwrap();
        let feed = Arc::new(ScriptFeed::open(&config(dir.path())).unwrap());
        let stride = feed.layout().slot_stride as usize;
        let writer = {
            let feed = feed.clone();
            std::thread::spawn(move || {
                for i in 0..3u8 {
                    let Acquired::Window(address) = feed.acquire().unwrap() else {
                        panic!("the script is reading")
                    };
                    // SAFETY: a mapped window of `stride` bytes.
                    unsafe { std::ptr::write_bytes(address as *mut u8, i + 1, stride) };
                    feed.submit(4 - i as i32).unwrap();
                }
                feed.end_input();
            })
        };
        let mut script = UnixStream::connect(dir.path().join("feed.sock")).unwrap();
        assert_eq!(read_message(&mut script), [0, 4]);
        assert_eq!(read_message(&mut script), [1, 3]);
        // Two windows held: the third waits for a release.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!writer.is_finished());
        script.write_all(&0u64.to_le_bytes()).unwrap();
        assert_eq!(read_message(&mut script), [2, 2]);
        assert_eq!(read_message(&mut script), [END, 3]);
        writer.join().unwrap();
        let data = std::fs::read(dir.path().join("feed.spill")).unwrap();
        assert_eq!((data[0], data[stride], data[2 * stride]), (1, 2, 3));
        feed.close();
    }

    #[test]
    fn a_script_that_hangs_up_stops_the_jvm() {
        let dir = tempfile::tempdir().unwrap();
        let feed = Arc::new(ScriptFeed::open(&config(dir.path())).unwrap());
        let script = UnixStream::connect(dir.path().join("feed.sock")).unwrap();
        for _ in 0..2 {
            assert!(matches!(feed.acquire().unwrap(), Acquired::Window(_)));
            feed.submit(1).unwrap();
        }
        drop(script);
        // The third acquire waits for a credit that the hang-up answers.
        assert_eq!(feed.acquire().unwrap(), Acquired::ReaderGone);
        feed.close();
    }

    #[test]
    fn a_reader_that_never_connects_is_hung_up_by_the_jvm() {
        let dir = tempfile::tempdir().unwrap();
        let feed = Arc::new(ScriptFeed::open(&config(dir.path())).unwrap());
        for _ in 0..2 {
            assert!(matches!(feed.acquire().unwrap(), Acquired::Window(a) if a != 0));
            feed.submit(1).unwrap();
        }
        // Every window is held by a script that never came: the third acquire blocks until the JVM
        // sees the process exit.
        let writer = {
            let feed = feed.clone();
            std::thread::spawn(move || feed.acquire().unwrap())
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!writer.is_finished());
        feed.hang_up();
        assert_eq!(writer.join().unwrap(), Acquired::ReaderGone);
        assert_eq!(feed.acquire().unwrap(), Acquired::ReaderGone);
        feed.close();
        assert!(!dir.path().join("feed.sock").exists());
    }
}
