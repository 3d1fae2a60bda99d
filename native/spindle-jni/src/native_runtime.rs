//! Natives of `io.spindle.jni.NativeRuntime`. Each entry runs its body under [`guard`]: those that decode a
//! config or create an object (and `init`, `modelInfo`) are shells over an `inner_*` function; the rest, a
//! handle lookup and a call or two, run inline in the guard's closure.

use std::sync::{LazyLock, Mutex, Once};

use jni::objects::{JByteArray, JClass, JString, JValue};
use jni::sys::{jbyteArray, jint, jlong, jobject, jstring};
use jni::JNIEnv;
use prost::Message;
use spindle_proto::spindle::{FeederConfig, ModelConfig, ScriptFeedConfig, TrainerConfig};
use spindle_runtime::op_libraries::{self, Loaded};
use spindle_runtime::rendezvous::RendezvousCanceller;
use spindle_runtime::{Acquired, Feeder, Model, Rendezvous, ScriptFeed, Trainer};

use crate::errors::{guard, JniError, Result};
use crate::handles::Handles;
use crate::log_bridge;

static MODELS: LazyLock<Handles<Model>> = LazyLock::new(|| Handles::new("model"));
static FEEDERS: LazyLock<Handles<Feeder>> = LazyLock::new(|| Handles::new("feeder"));
static RENDEZVOUS: LazyLock<Handles<Bound>> = LazyLock::new(|| Handles::new("rendezvous"));
static TRAINERS: LazyLock<Handles<Trainer>> = LazyLock::new(|| Handles::new("trainer"));
static SCRIPT_FEEDS: LazyLock<Handles<ScriptFeed>> = LazyLock::new(|| Handles::new("script feed"));
static INIT: Once = Once::new();
const OPTIONAL_LONG: &str = "java/util/OptionalLong";

/// A bound rendezvous as the JVM holds it: `openTrainer` takes the socket out, while the entry stays in the
/// table until then so that `cancelRendezvous`, from the task's kill switch, reaches a ring still forming.
struct Bound {
    rendezvous: Mutex<Option<Rendezvous>>,
    address: String,
    canceller: RendezvousCanceller,
}

impl Bound {
    fn new(rendezvous: Rendezvous) -> Bound {
        Bound {
            address: rendezvous.address().to_string(),
            canceller: rendezvous.canceller(),
            rendezvous: Mutex::new(Some(rendezvous)),
        }
    }

    fn take(&self, id: jlong) -> spindle_runtime::Result<Rendezvous> {
        self.rendezvous
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| {
                spindle_runtime::Error::Native(format!("rendezvous {id} is already in use"))
            })
    }
}

fn decode<M: Message + Default>(env: &JNIEnv, bytes: &JByteArray, what: &str) -> Result<M> {
    let raw = env.convert_byte_array(bytes)?;
    M::decode(raw.as_slice()).map_err(|e| JniError::Decode(format!("malformed {what} bytes: {e}")))
}

fn bytes_out(env: &mut JNIEnv, message: &impl Message) -> Result<jbyteArray> {
    Ok(env
        .byte_array_from_slice(&message.encode_to_vec())?
        .into_raw())
}

fn inner_init(env: &mut JNIEnv, level: &JString) -> Result<jstring> {
    let level: String = env.get_string(level)?.into();
    INIT.call_once(|| {
        // Another logger already installed (a host that embeds the runtime) keeps its place.
        if log::set_logger(log_bridge::bridge()).is_ok() {
            log::set_max_level(log_bridge::level_filter(&level));
        }
        std::panic::set_hook(Box::new(|info| {
            let trace = std::backtrace::Backtrace::force_capture();
            log::error!("{info}\n{trace}");
        }));
    });
    Ok(env.new_string(env!("CARGO_PKG_VERSION"))?.into_raw())
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_init<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    level: JString<'l>,
) -> jstring {
    guard(&mut env, std::ptr::null_mut(), |env| {
        inner_init(env, &level)
    })
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_setLogLevel<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    level: JString<'l>,
) {
    guard(&mut env, (), |env| {
        let level: String = env.get_string(&level)?.into();
        log::set_max_level(log_bridge::level_filter(&level));
        Ok(())
    })
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_nextLogs<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    timeout_ms: jlong,
    max_lines: jint,
) -> jbyteArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let timeout = std::time::Duration::from_millis(timeout_ms.max(0) as u64);
        let batch = log_bridge::bridge().drain(timeout, max_lines.max(1) as usize);
        bytes_out(env, &batch)
    })
}

fn inner_load_model(env: &mut JNIEnv, config: &JByteArray) -> Result<jlong> {
    let config: ModelConfig = decode(env, config, "ModelConfig")?;
    let model = Model::load(&config)?;
    Ok(MODELS.insert(model))
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_loadModel<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    config: JByteArray<'l>,
) -> jlong {
    guard(&mut env, 0, |env| inner_load_model(env, &config))
}

fn inner_load_op_library(env: &mut JNIEnv, path: &JString) -> Result<jstring> {
    let path: String = env.get_string(path)?.into();
    let said = match op_libraries::load(std::path::Path::new(&path))? {
        Loaded::Now { ops } => format!(
            "loaded op library {path}: {} ops ({})",
            ops.len(),
            ops.join(", ")
        ),
        Loaded::Already(first) => format!(
            "op library {path} is loaded already (as {})",
            first.display()
        ),
    };
    Ok(env.new_string(said)?.into_raw())
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_loadOpLibrary<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    path: JString<'l>,
) -> jstring {
    guard(&mut env, std::ptr::null_mut(), |env| {
        inner_load_op_library(env, &path)
    })
}

fn inner_model_info(env: &mut JNIEnv, model: jlong) -> Result<jbyteArray> {
    let model = MODELS.get(model)?;
    bytes_out(env, model.info())
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_modelInfo<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    model: jlong,
) -> jbyteArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        inner_model_info(env, model)
    })
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_closeModel<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    model: jlong,
) {
    guard(&mut env, (), |_| {
        MODELS.remove(model);
        Ok(())
    })
}

fn inner_open_feeder(env: &mut JNIEnv, model: jlong, config: &JByteArray) -> Result<jlong> {
    let config: FeederConfig = decode(env, config, "FeederConfig")?;
    let model = MODELS.get(model)?;
    // Ids are only for thread names here; the table issues the handle.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(FEEDERS.insert(Feeder::open(model, &config, id)?))
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_openFeeder<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    model: jlong,
    config: JByteArray<'l>,
) -> jlong {
    guard(&mut env, 0, |env| inner_open_feeder(env, model, &config))
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_feederLayout<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    feeder: jlong,
) -> jbyteArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let layout = FEEDERS.get(feeder)?.layout();
        bytes_out(env, &layout)
    })
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_submit<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    feeder: jlong,
    slot: jint,
    rows: jint,
) {
    guard(&mut env, (), |_| {
        Ok(FEEDERS.get(feeder)?.submit(slot, rows)?)
    })
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_awaitSlot<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    feeder: jlong,
    slot: jint,
) -> jbyteArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let outputs = FEEDERS.get(feeder)?.await_slot(slot)?;
        bytes_out(env, &outputs)
    })
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_releaseSlot<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    feeder: jlong,
    slot: jint,
) {
    guard(&mut env, (), |_| {
        Ok(FEEDERS.get(feeder)?.release_slot(slot)?)
    })
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_closeFeeder<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    feeder: jlong,
) {
    // Dropping the table's reference closes the feeder (joins its thread) unless a call still uses it.
    guard(&mut env, (), |_| {
        FEEDERS.remove(feeder);
        Ok(())
    })
}

fn inner_bind_rendezvous(env: &mut JNIEnv, host: &JString) -> Result<jlong> {
    let host: String = env.get_string(host)?.into();
    Ok(RENDEZVOUS.insert(Bound::new(Rendezvous::bind(&host)?)))
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_bindRendezvous<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    host: JString<'l>,
) -> jlong {
    guard(&mut env, 0, |env| inner_bind_rendezvous(env, &host))
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_rendezvousAddress<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    rendezvous: jlong,
) -> jstring {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let address = RENDEZVOUS.get(rendezvous)?.address.clone();
        Ok(env.new_string(address)?.into_raw())
    })
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_closeRendezvous<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    rendezvous: jlong,
) {
    guard(&mut env, (), |_| {
        RENDEZVOUS.remove(rendezvous);
        Ok(())
    })
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_cancelRendezvous<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    rendezvous: jlong,
) {
    guard(&mut env, (), |_| {
        if let Ok(bound) = RENDEZVOUS.get(rendezvous) {
            bound.canceller.cancel();
        }
        Ok(())
    })
}

fn inner_open_trainer(
    env: &mut JNIEnv,
    model: jlong,
    config: &JByteArray,
    rendezvous: jlong,
) -> Result<jlong> {
    let config: TrainerConfig = decode(env, config, "TrainerConfig")?;
    let model = MODELS.get(model)?;
    let opened = match rendezvous {
        0 => Trainer::open(model, &config, None),
        id => {
            let bound = RENDEZVOUS.get(id)?;
            // Consumed, even when opening fails: the entry goes once the ring formed or failed to.
            let opened = bound
                .take(id)
                .and_then(|r| Trainer::open(model, &config, Some(r)));
            RENDEZVOUS.remove(id);
            opened
        }
    };
    Ok(TRAINERS.insert(opened?))
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_openTrainer<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    model: jlong,
    config: JByteArray<'l>,
    rendezvous: jlong,
) -> jlong {
    guard(&mut env, 0, |env| {
        inner_open_trainer(env, model, &config, rendezvous)
    })
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_trainerLayout<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    trainer: jlong,
) -> jbyteArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let layout = TRAINERS.get(trainer)?.layout();
        bytes_out(env, &layout)
    })
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_acquireBatch<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    trainer: jlong,
) -> jlong {
    guard(&mut env, 0, |_| Ok(TRAINERS.get(trainer)?.acquire()?))
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_submitBatch<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    trainer: jlong,
    rows: jint,
) {
    guard(&mut env, (), |_| Ok(TRAINERS.get(trainer)?.submit(rows)?))
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_endTrainingData<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    trainer: jlong,
) {
    guard(&mut env, (), |_| {
        Ok(TRAINERS.get(trainer)?.end_training_data()?)
    })
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_finishTraining<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    trainer: jlong,
) -> jbyteArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let report = TRAINERS.get(trainer)?.finish()?;
        bytes_out(env, &report)
    })
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_trainerProgress<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    trainer: jlong,
) -> jbyteArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let progress = TRAINERS.get(trainer)?.progress();
        bytes_out(env, &progress)
    })
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_nextCheckpoint<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    trainer: jlong,
) -> jbyteArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        match TRAINERS.get(trainer)?.next_checkpoint() {
            Some(info) => bytes_out(env, &info),
            None => Ok(std::ptr::null_mut()),
        }
    })
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_checkpointDone<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    trainer: jlong,
    step: jlong,
    failure: JString<'l>,
) {
    guard(&mut env, (), |env| {
        let failure = if failure.is_null() {
            None
        } else {
            Some(env.get_string(&failure)?.into())
        };
        Ok(TRAINERS.get(trainer)?.checkpoint_done(step, failure)?)
    })
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_closeTrainer<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    trainer: jlong,
) {
    // close() runs here, not only on the last drop: a finish() blocked on another thread must wake.
    guard(&mut env, (), |_| {
        if let Some(t) = TRAINERS.remove(trainer) {
            t.close();
        }
        Ok(())
    })
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_panicForTest<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    message: JString<'l>,
) {
    guard(&mut env, (), |env| {
        let message: String = env.get_string(&message)?.into();
        panic!("{message}");
    })
}

fn inner_open_script_feed(env: &mut JNIEnv, config: &JByteArray) -> Result<jlong> {
    let config: ScriptFeedConfig = decode(env, config, "ScriptFeedConfig")?;
    Ok(SCRIPT_FEEDS.insert(ScriptFeed::open(&config)?))
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_openScriptFeed<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    config: JByteArray<'l>,
) -> jlong {
    guard(&mut env, 0, |env| inner_open_script_feed(env, &config))
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_scriptFeedLayout<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    feed: jlong,
) -> jbyteArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let layout = SCRIPT_FEEDS.get(feed)?.layout().clone();
        bytes_out(env, &layout)
    })
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_scriptFeedAcquire<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    feed: jlong,
) -> jobject {
    guard(&mut env, std::ptr::null_mut(), |env| {
        // A typed end, not an address: the JVM can never write rows to a window that is not there.
        let window = match SCRIPT_FEEDS.get(feed)?.acquire()? {
            Acquired::Window(address) => {
                let args = [JValue::Long(address)];
                env.call_static_method(OPTIONAL_LONG, "of", "(J)Ljava/util/OptionalLong;", &args)?
            }
            Acquired::ReaderGone => {
                env.call_static_method(OPTIONAL_LONG, "empty", "()Ljava/util/OptionalLong;", &[])?
            }
        };
        Ok(window.l()?.into_raw())
    })
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_scriptFeedHangUp<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    feed: jlong,
) {
    guard(&mut env, (), |_| {
        SCRIPT_FEEDS.get(feed)?.hang_up();
        Ok(())
    })
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_scriptFeedSubmit<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    feed: jlong,
    rows: jint,
) {
    guard(&mut env, (), |_| {
        Ok(SCRIPT_FEEDS.get(feed)?.submit(rows)?)
    })
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_scriptFeedEnd<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    feed: jlong,
) {
    guard(&mut env, (), |_| {
        SCRIPT_FEEDS.get(feed)?.end_input();
        Ok(())
    })
}

#[no_mangle]
pub extern "system" fn Java_io_spindle_jni_NativeRuntime_closeScriptFeed<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    feed: jlong,
) {
    // close() runs here, not only on the last drop: an acquire blocked on another thread must wake.
    guard(&mut env, (), |_| {
        if let Some(f) = SCRIPT_FEEDS.remove(feed) {
            f.close();
        }
        Ok(())
    })
}
