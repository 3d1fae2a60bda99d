//! A trainer's progress: the last step's and the last epoch's metrics, which the JVM polls for its progress
//! reports (the Spark UI's accumulators), and the chief's TensorBoard events. An actor on the trainer's
//! actor system owns both, so the trainer thread only sends each step's metrics and never waits on an
//! event file.

use actix::{Actor, Addr, Context, Handler};
use spindle_proto::spindle::{EpochMetrics, StepMetrics, TrainerProgress};

use crate::actors::{ask, messages, Actors, Reply};
use crate::events::EventWriter;

struct Tracker {
    last: StepMetrics,
    last_epoch: EpochMetrics,
    /// The chief's event file, when asked for; `None` after a failed write.
    events: Option<EventWriter>,
    /// Names the worker in logs.
    label: String,
}

impl Actor for Tracker {
    type Context = Context<Self>;
}

/// A step is done.
struct Stepped(StepMetrics);
/// An epoch is done: its metrics, at the global step it ended on.
struct EpochDone(i64, EpochMetrics);
/// Asks for the last step's and epoch's metrics.
struct Latest(Reply<TrainerProgress>);
/// Answered once every step sent before it is written and flushed.
struct Drained(Reply<()>);

messages!(Stepped, EpochDone, Latest, Drained);

impl Handler<Stepped> for Tracker {
    type Result = ();
    fn handle(&mut self, Stepped(m): Stepped, _: &mut Context<Self>) {
        self.last = m;
        self.write_events(&m);
    }
}

impl Handler<EpochDone> for Tracker {
    type Result = ();
    fn handle(&mut self, EpochDone(step, epoch): EpochDone, _: &mut Context<Self>) {
        let mut named = vec![("epoch/loss".to_string(), epoch.loss)];
        let mut validation: Vec<_> = epoch.validation.iter().collect();
        validation.sort_by(|a, b| a.0.cmp(b.0));
        named.extend(
            validation
                .into_iter()
                .map(|(n, v)| (format!("epoch/{n}"), *v)),
        );
        let values: Vec<(&str, f64)> = named.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        self.write(step, &values);
        self.last_epoch = epoch;
    }
}

impl Handler<Latest> for Tracker {
    type Result = ();
    fn handle(&mut self, Latest(reply): Latest, _: &mut Context<Self>) {
        let _ = reply.send(TrainerProgress {
            step: Some(self.last),
            epoch: Some(self.last_epoch.clone()),
        });
    }
}

impl Handler<Drained> for Tracker {
    type Result = ();
    fn handle(&mut self, Drained(reply): Drained, _: &mut Context<Self>) {
        let _ = reply.send(());
    }
}

impl Tracker {
    /// Adds the step to the TensorBoard event file.
    fn write_events(&mut self, m: &StepMetrics) {
        let ms = |micros: i64| micros as f64 / 1e3;
        self.write(
            m.step,
            &[
                ("loss", m.loss),
                (
                    "examples_per_second",
                    m.examples as f64 * 1e6 / m.step_micros.max(1) as f64,
                ),
                ("step_time_ms/input_wait", ms(m.input_wait_micros)),
                ("step_time_ms/compute", ms(m.compute_micros)),
                ("step_time_ms/allreduce", ms(m.allreduce_micros)),
                ("step_time_ms/checkpoint", ms(m.checkpoint_micros)),
            ],
        );
    }

    /// Writes `values` at `step` and flushes. A failed write stops the events, not the training: the model
    /// is worth more than its curves.
    fn write(&mut self, step: i64, values: &[(&str, f64)]) {
        let Some(writer) = &mut self.events else {
            return;
        };
        if let Err(e) = writer.scalars(step, values).and_then(|_| writer.flush()) {
            log::warn!("{}: TensorBoard events stop: {e}", self.label);
            self.events = None;
        }
    }
}

const PROGRESS: &str = "the trainer's progress actor";

/// The address of a trainer's progress actor.
#[derive(Clone)]
pub(crate) struct Progress(Addr<Tracker>);

impl Progress {
    /// Starts the progress actor on `actors`, writing events to `events` when given.
    pub(crate) fn start(actors: &Actors, events: Option<EventWriter>, label: &str) -> Progress {
        Progress(actors.start_actor(Tracker {
            last: StepMetrics::default(),
            last_epoch: EpochMetrics::default(),
            events,
            label: label.to_string(),
        }))
    }

    /// Records a step done; returns at once.
    pub(crate) fn stepped(&self, m: StepMetrics) {
        self.0.do_send(Stepped(m));
    }

    /// The last step's and epoch's metrics (all zero before the first, or once the actor has stopped).
    pub(crate) fn latest(&self) -> TrainerProgress {
        ask(&self.0, Latest, PROGRESS).unwrap_or_default()
    }

    /// Records an epoch's metrics (TensorBoard's `epoch/loss`, `epoch/val_<name>`) at the global step it
    /// ended on.
    pub(crate) fn epoch_done(&self, step: i64, epoch: EpochMetrics) {
        self.0.do_send(EpochDone(step, epoch));
    }

    /// Waits until every step recorded so far is in the event file.
    pub(crate) fn drain(&self) {
        let _ = ask(&self.0, Drained, PROGRESS);
    }
}
