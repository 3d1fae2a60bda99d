//! Issue 35, part 3: how fast can Rust decode Spark's Parquet straight into a feeder slot?
//!
//! Reads one `array<float>` column of fixed width (784) from the Parquet files Spark wrote, in batches of
//! `--batch` rows, into one reused `f32` buffer `[batch, width]`: what a Spindle feeder slot would receive. Two
//! readers: the arrow reader (`ParquetRecordBatchReaderBuilder`, projection to the column, then a copy of each
//! batch's child `Float32Array`) and the lower-level column reader (`read_records` of the leaf column, decoding
//! the values straight into the slot, checking the levels). Each reader runs with 1 thread over every row group
//! and with 2 threads, each on half of the row groups (as 2 Spark tasks would each take their splits).
//!
//! Every run checks every row: no null list, no null value, exactly `width` values. Prints one line per case:
//! `TIMES native reader=R threads=T rows=N groups=G ms t1 t2 ...` (after `--warmup` untimed runs), and a
//! `LAYOUT` line describing the files' row groups.
//!
//! Usage: `parquet-native [--column features] [--width 784] [--batch 256] [--repeats 5] [--warmup 1]
//! [--readers arrow,column] [--threads 1,2] FILE...`

use std::fs::File;
use std::path::PathBuf;
use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::Array;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use parquet::column::reader::get_typed_column_reader;
use parquet::data_type::FloatType;
use parquet::file::reader::{FileReader, SerializedFileReader};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T> = std::result::Result<T, Error>;

/// One row group of one file: the unit a thread (a Spark task's split) reads.
#[derive(Clone, Debug)]
struct Unit {
    file: PathBuf,
    group: usize,
    rows: usize,
}

/// What a run needs to know about the data.
#[derive(Clone)]
struct Shape {
    column: String,
    width: usize,
    batch: usize,
}

/// What one thread read: rows, and a checksum so that nothing read can be optimised away (and the readers can
/// be compared).
#[derive(Default)]
struct Read {
    rows: usize,
    sum: f64,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("parquet-native: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut shape = Shape {
        column: "features".into(),
        width: 784,
        batch: 256,
    };
    let mut warmup = 1usize;
    let (mut repeats, mut readers, mut threads) =
        (5usize, "arrow,column".to_string(), "1,2".to_string());
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--column" => shape.column = value()?,
            "--width" => shape.width = value()?.parse()?,
            "--batch" => shape.batch = value()?.parse()?,
            "--repeats" => repeats = value()?.parse()?,
            "--warmup" => warmup = value()?.parse()?,
            "--readers" => readers = value()?,
            "--threads" => threads = value()?,
            _ if a.starts_with("--") => return Err(format!("unknown option {a}").into()),
            _ => files.push(PathBuf::from(a)),
        }
    }
    if files.is_empty() {
        return Err("no Parquet files given".into());
    }
    let units = units(&files)?;
    let total: usize = units.iter().map(|u| u.rows).sum();
    let layout: Vec<String> = units.iter().map(|u| u.rows.to_string()).collect();
    println!(
        "LAYOUT files={} groups={} rows={} group_rows={}",
        files.len(),
        units.len(),
        total,
        layout.join(",")
    );
    for reader in readers.split(',') {
        for t in threads.split(',') {
            let t: usize = t.parse()?;
            let mut ms = Vec::new();
            for i in 0..warmup + repeats {
                let start = Instant::now();
                let read = read_all(reader, &units, t, &shape)?;
                let elapsed = start.elapsed().as_secs_f64() * 1e3;
                if read.rows != total {
                    return Err(format!("{reader}/{t}: read {} rows of {total}", read.rows).into());
                }
                if i >= warmup {
                    ms.push(format!("{elapsed:.2}"));
                }
                if i + 1 == warmup + repeats {
                    eprintln!("[parquet-native] {reader} x{t}: checksum {:.6e}", read.sum);
                }
            }
            println!(
                "TIMES native reader={reader} threads={t} rows={total} groups={} ms {}",
                units.len(),
                ms.join(" ")
            );
        }
    }
    Ok(())
}

/// Every row group of every file, in file order.
fn units(files: &[PathBuf]) -> Result<Vec<Unit>> {
    let mut out = Vec::new();
    for f in files {
        let reader = SerializedFileReader::new(File::open(f)?)?;
        for (group, g) in reader.metadata().row_groups().iter().enumerate() {
            out.push(Unit {
                file: f.clone(),
                group,
                rows: g.num_rows() as usize,
            });
        }
    }
    Ok(out)
}

/// Splits the units into `threads` contiguous runs of about equal rows and reads each on its own thread.
fn read_all(reader: &str, units: &[Unit], threads: usize, shape: &Shape) -> Result<Read> {
    let total: usize = units.iter().map(|u| u.rows).sum();
    let mut parts: Vec<Vec<Unit>> = vec![Vec::new(); threads];
    let mut acc = 0;
    for u in units {
        // A unit goes to the part its middle row falls in, as Spark gives a row group to the split holding its
        // midpoint.
        let mid = acc + u.rows / 2;
        parts[(mid * threads / total.max(1)).min(threads - 1)].push(u.clone());
        acc += u.rows;
    }
    let results: Vec<Result<Read>> = std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .iter()
            .map(|part| {
                s.spawn(move || match reader {
                    "arrow" => read_arrow(part, shape),
                    "column" => read_column(part, shape),
                    other => Err(format!("unknown reader {other}").into()),
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect()
    });
    let mut out = Read::default();
    for r in results {
        let r = r?;
        out.rows += r.rows;
        out.sum += r.sum;
    }
    Ok(out)
}

/// Groups consecutive units by file, keeping their order: one reader per file, as one task per split.
fn by_file(units: &[Unit]) -> Vec<(PathBuf, Vec<usize>)> {
    let mut out: Vec<(PathBuf, Vec<usize>)> = Vec::new();
    for u in units {
        match out.last_mut() {
            Some((f, groups)) if *f == u.file => groups.push(u.group),
            _ => out.push((u.file.clone(), vec![u.group])),
        }
    }
    out
}

/// The arrow reader: RecordBatches of `batch` rows projected to the column, each batch's child values copied
/// into the slot.
fn read_arrow(units: &[Unit], shape: &Shape) -> Result<Read> {
    let w = shape.width;
    let mut slot = vec![0f32; shape.batch * w];
    let mut read = Read::default();
    for (path, groups) in by_file(units) {
        let file = File::open(&path)?;
        let meta = ArrowReaderMetadata::load(&file, Default::default())?;
        let root = meta
            .schema()
            .index_of(&shape.column)
            .map_err(|_| format!("{}: no column {}", path.display(), shape.column))?;
        let mask = ProjectionMask::roots(meta.metadata().file_metadata().schema_descr(), [root]);
        let batches = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta)
            .with_batch_size(shape.batch)
            .with_projection(mask)
            .with_row_groups(groups)
            .build()?;
        for batch in batches {
            let batch = batch?;
            let list = batch
                .column(0)
                .as_list_opt::<i32>()
                .ok_or("the column is not a list")?;
            let n = list.len();
            if list.null_count() != 0 {
                return Err("a null list".into());
            }
            let offsets = list.value_offsets();
            if offsets.windows(2).any(|o| (o[1] - o[0]) as usize != w) {
                return Err(format!("a list without {w} values").into());
            }
            let values = list
                .values()
                .as_primitive_opt::<Float32Type>()
                .ok_or("not a list of float")?;
            let (start, end) = (offsets[0] as usize, offsets[n] as usize);
            if values.slice(start, end - start).null_count() != 0 {
                return Err("a null value".into());
            }
            slot[..n * w].copy_from_slice(&values.values()[start..end]);
            read.sum += checksum(&slot[..n * w], w);
            read.rows += n;
        }
    }
    Ok(read)
}

/// The column reader: the list's leaf column decoded by `read_records` straight into the slot (a reused Vec at
/// the batch's capacity), the repetition and definition levels checked: every row starts a new record every
/// `width` values, and every value is defined.
fn read_column(units: &[Unit], shape: &Shape) -> Result<Read> {
    let w = shape.width;
    let mut slot: Vec<f32> = Vec::with_capacity(shape.batch * w);
    let (mut def, mut rep) = (Vec::<i16>::new(), Vec::<i16>::new());
    let mut read = Read::default();
    for (path, groups) in by_file(units) {
        let reader = SerializedFileReader::new(File::open(&path)?)?;
        let schema = reader.metadata().file_metadata().schema_descr_ptr();
        let leaf = (0..schema.num_columns())
            .find(|&i| schema.column(i).path().parts()[0] == shape.column)
            .ok_or_else(|| format!("{}: no column {}", path.display(), shape.column))?;
        let max_def = schema.column(leaf).max_def_level();
        for g in groups {
            let group = reader.get_row_group(g)?;
            let mut column = get_typed_column_reader::<FloatType>(group.get_column_reader(leaf)?);
            let mut left = group.metadata().num_rows() as usize;
            while left > 0 {
                slot.clear();
                def.clear();
                rep.clear();
                let want = shape.batch.min(left);
                let (records, values, levels) =
                    column.read_records(want, Some(&mut def), Some(&mut rep), &mut slot)?;
                if records != want || values != records * w || levels != values {
                    return Err(format!(
                        "{records} records of {want}, {values} values, {levels} levels"
                    )
                    .into());
                }
                // Branch-free folds (they vectorise): a check per level that branches costs more than the decode.
                if def.iter().fold(0, |a, &d| a | (d ^ max_def)) != 0 {
                    return Err("a null list or value".into());
                }
                // Each record: repetition level 0 (a new list), then w - 1 times 1 (the same list).
                if rep
                    .chunks_exact(w)
                    .any(|r| r[0] != 0 || r[1..].iter().fold(0, |a, &l| a | (l ^ 1)) != 0)
                {
                    return Err(format!("a list without {w} values").into());
                }
                read.sum += checksum(&slot, w);
                read.rows += records;
                left -= records;
            }
        }
    }
    Ok(read)
}

/// The first and last value of every row, summed: the same for every reader and split of the same rows.
fn checksum(slot: &[f32], w: usize) -> f64 {
    slot.chunks_exact(w)
        .map(|r| r[0] as f64 + r[w - 1] as f64)
        .sum()
}
