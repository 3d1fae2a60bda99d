//! TensorBoard event files of scalars, written without TensorFlow's summary ops so that training
//! curves need no graph changes: a TFRecord file of `Event` protos, as TensorFlow's own writer makes.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use spindle_proto::tensorflow::{event, summary, Event, Summary};
use spindle_proto::Message;

use crate::error::{Error, Result};

/// Tells apart the files of writers that one process opens within the same second.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// An open event file; TensorBoard shows each of its tags as one scalar chart over the steps.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Starts a new event file in `dir` (created if missing), named as TensorFlow names its own so
    /// that TensorBoard picks it up beside theirs and concurrent writers never share a file.
    pub fn create(dir: &Path) -> Result<EventWriter> {
        fs::create_dir_all(dir).map_err(|e| {
            Error::io(
                format!("cannot create event directory {}", dir.display()),
                e,
            )
        })?;
        let now = wall_time();
        let name = format!(
            "events.out.tfevents.{:010}.{}.{}.{}",
            now as u64,
            hostname(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot create event file {}", path.display()), e))?;
        let mut writer = EventWriter {
            path,
            out: BufWriter::new(file),
        };
        // Readers check this first record to tell the format (Event protos) from older ones.
        writer.write(&Event {
            wall_time: now,
            step: 0,
            what: Some(event::What::FileVersion("brain.Event:2".to_string())),
        })?;
        Ok(writer)
    }

    /// Records `values` (tag, value) at `step`; TensorBoard keeps scalars as float32.
    pub fn scalars(&mut self, step: i64, values: &[(&str, f64)]) -> Result<()> {
        let value = values
            .iter()
            .map(|&(tag, v)| summary::Value {
                tag: tag.to_string(),
                value: Some(summary::value::Value::SimpleValue(v as f32)),
            })
            .collect();
        self.write(&Event {
            wall_time: wall_time(),
            step,
            what: Some(event::What::Summary(Summary { value })),
        })
    }

    /// Pushes buffered events to the file, so that a running TensorBoard sees them.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| self.io_error(e))
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, event: &Event) -> Result<()> {
        let bytes = record(&event.encode_to_vec());
        self.out.write_all(&bytes).map_err(|e| self.io_error(e))
    }

    fn io_error(&self, e: io::Error) -> Error {
        Error::io(
            format!("cannot write event file {}", self.path.display()),
            e,
        )
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        // Nothing can report a failure here; callers who care call `flush` first.
        let _ = self.out.flush();
    }
}

fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        std::env::var("HOSTNAME").unwrap_or_default()
    };
    if name.is_empty() {
        "localhost".to_string()
    } else {
        name
    }
}

/// TFRecord framing: readers find each record's end from the length, whose own CRC guards against
/// reading a torn length as a huge record.
fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// TFRecord masks its CRCs, since a CRC over data that embeds CRCs is weak.
fn masked_crc(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
        .rotate_right(15)
        .wrapping_add(0xa282_ead8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_the_castagnoli_crc() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(
            masked_crc(b"123456789"),
            0xE306_9283_u32.rotate_right(15).wrapping_add(0xa282_ead8)
        );
        // From TensorBoard's own masked_crc32c.
        assert_eq!(masked_crc(b"123456789"), 0xC78A_B0E5);
    }

    #[test]
    fn frames_a_record_as_length_crc_data_crc() {
        // Bytes from TensorBoard's own framing of b"abc".
        let expected = [
            3, 0, 0, 0, 0, 0, 0, 0, 0xb0, 0x99, 0x49, 0x0e, b'a', b'b', b'c', 0x6e, 0x57, 0xf1,
            0x21,
        ];
        assert_eq!(record(b"abc"), expected);
    }
}
