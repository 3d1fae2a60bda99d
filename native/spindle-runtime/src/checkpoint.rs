//! The chief's checkpointer and its hand-off to the JVM's uploader.
//!
//! Saving runs on the trainer thread between two steps, where the variables are consistent: the model's
//! saver writes `<dir>/ckpt-<step>/variables.*` on local disk, and `checkpoint.pb` (a [`CheckpointInfo`]:
//! step, data position, model fingerprint) beside it. The upload to the Hadoop FileSystem is the JVM's
//! (only it speaks Hadoop): its uploader thread takes the checkpoint through [`Checkpoints::next`] and
//! reports back with [`Checkpoints::done`]. Both sides talk to a hand-off actor on the trainer's actor
//! system, which alone holds the hand-off's state. One checkpoint is in flight at a time, so training
//! waits only when the next save comes due while the previous upload still runs, and local disk holds at
//! most two checkpoints.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::{Actor, Addr, Context, Handler};
use spindle_proto::spindle::{CheckpointInfo, EpochMetrics, StepMetrics};
use spindle_proto::Message as _;

use crate::actors::{ask, messages, Actors, Reply};
use crate::error::{Error, Result};
use crate::model::Model;

/// Name of the data-position file beside a checkpoint's variables.
pub const INFO_FILE: &str = "checkpoint.pb";

/// The hand-off actor, on the trainer's actor system. Requests that cannot be answered yet (the uploader
/// waiting for a checkpoint, a save waiting for the upload before it) wait in it until one can.
#[derive(Default)]
struct Handoff {
    /// Saved, not yet taken by the uploader.
    ready: Option<CheckpointInfo>,
    /// Taken by the uploader, not yet reported done.
    uploading: Option<CheckpointInfo>,
    /// No checkpoint will come any more (training ended, or was closed).
    finished: bool,
    failure: Option<Error>,
    takers: Vec<Reply<Option<CheckpointInfo>>>,
    idlers: Vec<Reply<Result<()>>>,
}

impl Actor for Handoff {
    type Context = Context<Self>;
}

/// The checkpointer saved `0`.
struct Offer(CheckpointInfo);
/// The uploader asks for the next checkpoint; `None` once no more will come.
struct Next(Reply<Option<CheckpointInfo>>);
/// The uploader is done with checkpoint `step`, or failed with `failure`.
struct Done {
    step: i64,
    failure: Option<String>,
    reply: Reply<Result<()>>,
}
/// The checkpointer asks to hear when no checkpoint is in flight (or why none can be).
struct WaitIdle(Reply<Result<()>>);
/// No checkpoint will come any more.
struct Finish;

messages!(Offer, Next, Done, WaitIdle, Finish);

impl Handoff {
    /// Answers every waiting request that can be answered now.
    fn settle(&mut self) {
        while !self.takers.is_empty() {
            if let Some(info) = self.ready.take() {
                let taker = self.takers.remove(0);
                if taker.send(Some(info.clone())).is_ok() {
                    self.uploading = Some(info);
                } else {
                    self.ready = Some(info); // that uploader is gone; the next one takes it
                }
            } else if self.finished {
                for taker in self.takers.drain(..) {
                    let _ = taker.send(None);
                }
            } else {
                break;
            }
        }
        let answer = if let Some(e) = &self.failure {
            Err(e.clone())
        } else if self.finished {
            Err(Error::Native("trainer closed while checkpointing".into()))
        } else if self.ready.is_none() && self.uploading.is_none() {
            Ok(())
        } else {
            return;
        };
        for idler in self.idlers.drain(..) {
            let _ = idler.send(answer.clone());
        }
    }
}

impl Handler<Offer> for Handoff {
    type Result = ();
    fn handle(&mut self, Offer(info): Offer, _: &mut Context<Self>) {
        self.ready = Some(info);
        self.settle();
    }
}

impl Handler<Next> for Handoff {
    type Result = ();
    fn handle(&mut self, Next(reply): Next, _: &mut Context<Self>) {
        self.takers.push(reply);
        self.settle();
    }
}

impl Handler<Done> for Handoff {
    type Result = ();
    fn handle(&mut self, done: Done, _: &mut Context<Self>) {
        let info = match self.uploading.take() {
            Some(info) if info.step == done.step => info,
            other => {
                self.uploading = other;
                let _ = done.reply.send(Err(Error::Input(format!(
                    "checkpoint {} is not being uploaded",
                    done.step
                ))));
                return;
            }
        };
        if let Some(message) = done.failure {
            self.failure.get_or_insert(Error::Checkpoint(message));
        }
        if let Some(dir) = Path::new(&info.prefix).parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
        let _ = done.reply.send(Ok(()));
        self.settle();
    }
}

impl Handler<WaitIdle> for Handoff {
    type Result = ();
    fn handle(&mut self, WaitIdle(reply): WaitIdle, _: &mut Context<Self>) {
        self.idlers.push(reply);
        self.settle();
    }
}

impl Handler<Finish> for Handoff {
    type Result = ();
    fn handle(&mut self, _: Finish, _: &mut Context<Self>) {
        self.finished = true;
        self.settle();
    }
}

/// Where the checkpointer and the JVM uploader meet: the address of their hand-off actor.
#[derive(Clone)]
pub struct Checkpoints(Addr<Handoff>);

const HANDOFF: &str = "the checkpoint hand-off";

impl Checkpoints {
    /// Starts the hand-off actor on `actors`.
    pub fn start(actors: &Actors) -> Checkpoints {
        Checkpoints(actors.start_actor(Handoff::default()))
    }

    /// Blocks until a checkpoint is ready to upload and takes it; `None` once no more will come.
    pub fn next(&self) -> Option<CheckpointInfo> {
        ask(&self.0, Next, HANDOFF).ok().flatten()
    }

    /// The uploader is done with checkpoint `step`: its local copy goes; a failed upload fails training.
    pub fn done(&self, step: i64, failure: Option<String>) -> Result<()> {
        ask(
            &self.0,
            |reply| Done {
                step,
                failure,
                reply,
            },
            HANDOFF,
        )?
    }

    /// No checkpoint will come any more; wakes the uploader (and a save waiting for it).
    pub fn finish(&self) {
        self.0.do_send(Finish);
    }

    /// Waits until nothing is in flight, or returns the failure of the last upload.
    fn wait_idle(&self) -> Result<()> {
        ask(&self.0, WaitIdle, HANDOFF)?
    }

    fn offer(&self, info: CheckpointInfo) {
        self.0.do_send(Offer(info));
    }
}

/// Decides when a checkpoint is due and writes it. Owned by the chief's trainer thread.
pub struct Checkpointer {
    handoff: Checkpoints,
    dir: PathBuf,
    every_steps: i64,
    every: Option<Duration>,
    last: Instant,
    fingerprint: String,
}

impl Checkpointer {
    /// Also saves once, into a scratch directory it then deletes: TensorFlow builds the saver's function on
    /// its first run (about 30 ms here, against about 1 ms for a save after it), and a first save inside training
    /// would stall every worker of the step; here it overlaps the rendezvous. It also proves the model can be
    /// saved before any step runs.
    pub fn new(
        handoff: Checkpoints,
        model: &Model,
        dir: &Path,
        every_steps: i64,
        every_millis: i64,
    ) -> Result<Checkpointer> {
        let scratch = dir.join("first-save");
        // A checkpoint error even when the OS failed: what the caller must hear is that checkpoints cannot
        // be written there (SpindleCheckpointException), and the message names the path.
        let failed = |e: &dyn std::fmt::Display| {
            Error::Checkpoint(format!("saving a checkpoint into {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(&scratch).map_err(|e| failed(&e))?;
        model
            .save(&scratch.join("variables"))
            .map_err(|e| failed(&e))?;
        let _ = std::fs::remove_dir_all(&scratch);
        Ok(Checkpointer {
            handoff,
            dir: dir.to_path_buf(),
            every_steps,
            every: (every_millis > 0).then(|| Duration::from_millis(every_millis as u64)),
            last: Instant::now(),
            fingerprint: model.fingerprint(),
        })
    }

    /// Saves a checkpoint after global step `step` (the `epoch_step`-th of `epoch`) when one is due.
    /// Saves a checkpoint after `step` when one is due; `steps` and `epochs` are the history up to it
    /// (`step` included), saved with it.
    pub fn after_step(
        &mut self,
        model: &Model,
        (step, epoch, epoch_step): (i64, i32, i64),
        steps: &[StepMetrics],
        epochs: &[EpochMetrics],
    ) -> Result<()> {
        let by_steps = self.every_steps > 0 && step % self.every_steps == 0;
        let by_time = self.every.is_some_and(|every| self.last.elapsed() >= every);
        if !(by_steps || by_time) {
            return Ok(());
        }
        self.handoff.wait_idle()?;
        let dir = self.dir.join(format!("ckpt-{step}"));
        // As in `new`: file trouble here is the checkpoint's, so it is a checkpoint error naming the path.
        let io = |what: &str, e: std::io::Error| {
            Error::Checkpoint(format!("checkpoint {}: {what}: {e}", dir.display()))
        };
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| io("creating it", e))?;
        let prefix = dir.join("variables");
        model.save(&prefix).map_err(|e| {
            Error::Checkpoint(format!("saving checkpoint {}: {e}", prefix.display()))
        })?;
        let info = CheckpointInfo {
            step,
            epoch,
            epoch_step,
            prefix: prefix.to_string_lossy().into_owned(),
            model_fingerprint: self.fingerprint.clone(),
            saved_at_millis: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            source: String::new(),
            steps: steps.to_vec(),
            epochs: epochs.to_vec(),
        };
        std::fs::write(dir.join(INFO_FILE), info.encode_to_vec()).map_err(|e| io(INFO_FILE, e))?;
        self.last = Instant::now();
        log::info!("checkpoint at step {step} (epoch {epoch}, step {epoch_step} of it) saved");
        self.handoff.offer(info);
        Ok(())
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.handoff.finish();
    }
}

/// Restores `info` (a checkpoint the JVM downloaded: `prefix` local, `source` where it came from) into
/// `model`, after checking that it was written by the same model.
pub fn restore(model: &Model, info: &CheckpointInfo) -> Result<()> {
    let shown = if info.source.is_empty() {
        &info.prefix
    } else {
        &info.source
    };
    if info.model_fingerprint != model.fingerprint() {
        return Err(Error::Checkpoint(format!(
            "checkpoint {shown} was written by a different model than {} (their signatures differ)",
            model.path()
        )));
    }
    model
        .restore(Path::new(&info.prefix))
        .map_err(|e| Error::Checkpoint(format!("checkpoint {shown} cannot be restored: {e}")))?;
    log::info!(
        "restored checkpoint {shown}: step {}, epoch {}, step {} of it",
        info.step,
        info.epoch,
        info.epoch_step
    );
    Ok(())
}
