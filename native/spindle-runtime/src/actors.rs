//! The actix actor system each feeder and trainer runs on, and how plain threads talk to its actors.
//!
//! [`Actors::start`] starts an actix `System` on a thread of its own. Timer- and event-driven actors (the
//! checkpoint hand-off, step progress and TensorBoard events, ring heartbeats) live on that thread; actors
//! that block (a TensorFlow run, a socket read) get `SyncArbiter` threads of their own through
//! [`Actors::start_sync`]. [`Actors::stop`] stops the System and joins its thread; a `SyncArbiter` thread
//! ends once its System has stopped and its current message is done. A blocking actor cannot be
//! interrupted mid-message, so its owner ends the message first (closing its input, shutting its
//! sockets) and waits for the message's reply before it stops the System.
//!
//! The callers are JVM threads and the trainer's own thread, which run no actix executor, so a request
//! carries a reply channel ([`Reply`]) instead of awaiting actix's reply future. A message to an actor
//! that has stopped is dropped with its reply channel, which the caller sees as the actor gone: nothing
//! waits forever on a stopped actor.

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Context, Handler, Message, SyncArbiter, SyncContext, System};
use crossbeam_channel::{bounded, Receiver, Sender};

use crate::error::{Error, Result};

/// The channel an actor answers a request on.
pub(crate) type Reply<T> = Sender<T>;

/// An actix System on a thread it owns. [`Actors::stop`] is idempotent and runs on drop.
pub struct Actors {
    system: System,
    /// Disconnects when the System's thread returns: a join that needs no lock to take a handle.
    ended: Receiver<()>,
    name: String,
}

impl Actors {
    /// Starts a System on a thread called `name`.
    pub fn start(name: &str) -> Result<Actors> {
        let (tx, rx) = bounded(1);
        let (ending, ended) = bounded::<()>(0);
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let _ending = ending;
                let runner = System::new();
                let _ = tx.send(System::current());
                if let Err(e) = runner.run() {
                    log::error!("actor system stopped with an error: {e}");
                }
            })
            .map_err(|e| Error::Native(format!("starting the actor system thread: {e}")))?;
        let system = rx
            .recv()
            .map_err(|_| Error::Native("the actor system failed to start".into()))?;
        Ok(Actors {
            system,
            ended,
            name: name.to_string(),
        })
    }

    /// Starts `actor` on the System's thread.
    pub(crate) fn start_actor<A>(&self, actor: A) -> Addr<A>
    where
        A: Actor<Context = Context<A>> + Send,
    {
        A::start_in_arbiter(self.system.arbiter(), move |_| actor)
    }

    /// Starts an actor that blocks on a thread of its own called `name`, made by `factory`.
    pub(crate) fn start_sync<A>(
        &self,
        name: String,
        factory: impl Fn() -> A + Send + Sync + 'static,
    ) -> Result<Addr<A>>
    where
        A: Actor<Context = SyncContext<A>> + Send,
    {
        let (tx, rx) = bounded(1);
        // A SyncArbiter registers with the System of the thread that starts it: start it on ours.
        self.system.arbiter().spawn_fn(move || {
            let name = name.clone();
            let addr = SyncArbiter::start_with_thread_builder(
                1,
                move || std::thread::Builder::new().name(name.clone()),
                factory,
            );
            let _ = tx.send(addr);
        });
        rx.recv()
            .map_err(|_| Error::Native(format!("actor system {} has stopped", self.name)))
    }

    /// Stops the System and waits for its thread to end. Idempotent.
    pub fn stop(&self) {
        self.system.stop();
        let _ = self.ended.recv();
    }
}

impl Drop for Actors {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Declares messages that get no actix reply (a request carries its own [`Reply`] channel).
macro_rules! messages {
    ($($m:ty),*) => { $(impl ::actix::Message for $m { type Result = (); })* };
}
pub(crate) use messages;

/// Sends `addr` the request `make` builds around a reply channel, and waits for the answer. `what` names
/// the actor in the error when it is gone.
pub(crate) fn ask<A, M, T>(
    addr: &Addr<A>,
    make: impl FnOnce(Reply<T>) -> M,
    what: &str,
) -> Result<T>
where
    A: Actor + Handler<M>,
    A::Context: ToEnvelope<A, M>,
    M: Message<Result = ()> + Send + 'static,
{
    let (tx, rx) = bounded(1);
    addr.do_send(make(tx));
    rx.recv()
        .map_err(|_| Error::Native(format!("{what} has stopped")))
}
