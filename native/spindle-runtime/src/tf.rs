//! A small safe wrapper over TensorFlow's C API (`tensorflow-sys`).
//!
//! Why not the `tensorflow` crate: its `Tensor` owns its buffer and its `Session` hides the raw session, so a
//! tensor cannot alias memory we own. Here [`Tensor::from_external`] wraps a caller's 64-byte-aligned buffer
//! without a copy, and [`SavedModel::run`] runs the raw session.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use prost::Message;
use spindle_proto::tensorflow::MetaGraphDef;
use tensorflow_sys as tf;

use crate::error::{Error, Result};

/// Alignment TensorFlow needs to use external memory in place; with less it silently copies.
pub const ALIGNMENT: usize = 64;

static QUIET: Once = Once::new();

/// Quiets TensorFlow's start-up log unless the user chose a level; it reads the variable once, at load.
fn quiet_tensorflow() {
    QUIET.call_once(|| {
        if std::env::var_os("TF_CPP_MIN_LOG_LEVEL").is_none() {
            std::env::set_var("TF_CPP_MIN_LOG_LEVEL", "2");
        }
    });
}

/// Owned `TF_Status`.
struct Status(*mut tf::TF_Status);

impl Status {
    fn new() -> Self {
        // SAFETY: TF_NewStatus has no preconditions.
        Status(unsafe { tf::TF_NewStatus() })
    }

    /// `Ok` if TensorFlow reported success, else its message passed through `wrap`.
    fn check(&self, wrap: impl FnOnce(String) -> Error) -> Result<()> {
        // SAFETY: self.0 is a live status; TF_Message returns a NUL-terminated string it owns.
        unsafe {
            if tf::TF_GetCode(self.0) == tf::TF_OK {
                return Ok(());
            }
            let msg = CStr::from_ptr(tf::TF_Message(self.0))
                .to_string_lossy()
                .into_owned();
            Err(wrap(msg))
        }
    }
}

impl Drop for Status {
    fn drop(&mut self) {
        // SAFETY: owned, deleted once.
        unsafe { tf::TF_DeleteStatus(self.0) }
    }
}

/// A counter of live tensors aliasing one buffer; the buffer may be reused only when it reads zero.
#[derive(Debug, Default)]
pub struct AliasGuard(AtomicUsize);

impl AliasGuard {
    /// Number of tensors TensorFlow still holds over the buffer.
    pub fn live(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// Waits until TensorFlow has released every tensor over the buffer, at most 30 s; `what` names the
    /// buffer in the error. TensorFlow frees tensors on its own threads, so this is usually already true.
    pub fn wait_released(&self, what: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.live() > 0 {
            if Instant::now() > deadline {
                return Err(Error::Native(format!(
                    "TensorFlow still holds {what} after 30 s"
                )));
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        Ok(())
    }
}

unsafe extern "C" fn release_alias(_data: *mut c_void, _len: usize, arg: *mut c_void) {
    // SAFETY: arg is the Arc<AliasGuard> leaked by Tensor::from_external; TensorFlow calls this once.
    let guard = unsafe { Arc::from_raw(arg as *const AliasGuard) };
    guard.0.fetch_sub(1, Ordering::AcqRel);
}

/// The element types Spindle moves, as TensorFlow names them: every fixed-width one but the complex and
/// quantized types, and strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    Float32,
    Float64,
    Int32,
    Int64,
    Bool,
    UInt8,
    Int8,
    Int16,
    UInt16,
    UInt32,
    UInt64,
    Float16,
    BFloat16,
    /// DT_STRING: each element a `TF_TString`, which TensorFlow lays out itself (never aliased).
    String,
}

/// Each dtype with its C API type and the size of one element in a tensor's buffer.
const TYPES: [(DataType, tf::TF_DataType, usize); 14] = [
    (DataType::Float32, tf::TF_FLOAT, 4),
    (DataType::Float64, tf::TF_DOUBLE, 8),
    (DataType::Int32, tf::TF_INT32, 4),
    (DataType::Int64, tf::TF_INT64, 8),
    (DataType::Bool, tf::TF_BOOL, 1),
    (DataType::UInt8, tf::TF_UINT8, 1),
    (DataType::Int8, tf::TF_INT8, 1),
    (DataType::Int16, tf::TF_INT16, 2),
    (DataType::UInt16, tf::TF_UINT16, 2),
    (DataType::UInt32, tf::TF_UINT32, 4),
    (DataType::UInt64, tf::TF_UINT64, 8),
    (DataType::Float16, tf::TF_HALF, 2),
    (DataType::BFloat16, tf::TF_BFLOAT16, 2),
    (
        DataType::String,
        tf::TF_STRING,
        std::mem::size_of::<tf::TF_TString>(),
    ),
];

impl DataType {
    fn entry(self) -> &'static (DataType, tf::TF_DataType, usize) {
        TYPES
            .iter()
            .find(|(d, _, _)| *d == self)
            .expect("every DataType is in TYPES")
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        self.entry().2
    }

    fn to_c(self) -> tf::TF_DataType {
        self.entry().1
    }

    /// From TensorFlow's DataType enum value, or `None` for the types Spindle does not move.
    pub fn from_tf(value: i32) -> Option<Self> {
        TYPES
            .iter()
            .find(|(_, c, _)| *c as i32 == value)
            .map(|(d, _, _)| *d)
    }
}

/// TensorFlow's name for a DataType enum value, for error messages.
pub fn tf_type_name(value: i32) -> String {
    const NAMES: [&str; 24] = [
        "DT_INVALID",
        "DT_FLOAT",
        "DT_DOUBLE",
        "DT_INT32",
        "DT_UINT8",
        "DT_INT16",
        "DT_INT8",
        "DT_STRING",
        "DT_COMPLEX64",
        "DT_INT64",
        "DT_BOOL",
        "DT_QINT8",
        "DT_QUINT8",
        "DT_QINT32",
        "DT_BFLOAT16",
        "DT_QINT16",
        "DT_QUINT16",
        "DT_UINT16",
        "DT_COMPLEX128",
        "DT_HALF",
        "DT_RESOURCE",
        "DT_VARIANT",
        "DT_UINT32",
        "DT_UINT64",
    ];
    usize::try_from(value)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("DT_{value}"), |n| n.to_string())
}

/// An owned `TF_Tensor`, deleted on drop.
#[derive(Debug)]
pub struct Tensor(*mut tf::TF_Tensor);

// SAFETY: a TF_Tensor is immutable once built and TensorFlow refcounts its buffer thread-safely.
unsafe impl Send for Tensor {}
unsafe impl Sync for Tensor {}

impl Tensor {
    /// A tensor over `len` bytes at `data`, without a copy. `guard` counts it until TensorFlow frees it.
    ///
    /// # Safety
    /// `data` must stay valid and unwritten for `len` bytes until `guard.live()` drops back, and `len` must
    /// equal the product of `dims` times the element size.
    pub unsafe fn from_external(
        dtype: DataType,
        dims: &[i64],
        data: *mut u8,
        len: usize,
        guard: &Arc<AliasGuard>,
    ) -> Result<Tensor> {
        guard.0.fetch_add(1, Ordering::AcqRel);
        let arg = Arc::into_raw(Arc::clone(guard)) as *mut c_void;
        // SAFETY: dims outlives the call; TensorFlow calls release_alias exactly once, also on failure.
        let t = unsafe {
            tf::TF_NewTensor(
                dtype.to_c(),
                dims.as_ptr(),
                dims.len() as c_int,
                data as *mut c_void,
                len,
                Some(release_alias),
                arg,
            )
        };
        if t.is_null() {
            return Err(Error::Native(format!(
                "TF_NewTensor failed for {dtype:?} {dims:?}"
            )));
        }
        Ok(Tensor(t))
    }

    /// A TensorFlow-allocated tensor holding a copy of `data` (for tests and scalars).
    pub fn copy_from<T: Copy>(dtype: DataType, dims: &[i64], data: &[T]) -> Result<Tensor> {
        let len = std::mem::size_of_val(data);
        if dims.iter().product::<i64>() as usize * dtype.size() != len {
            return Err(Error::Input(format!(
                "{len} bytes do not fill a {dtype:?} tensor of {dims:?}"
            )));
        }
        // SAFETY: data is len initialised bytes.
        let bytes = unsafe { std::slice::from_raw_parts(data.as_ptr() as *const u8, len) };
        Self::filled(dtype, dims, |out| out.copy_from_slice(bytes))
    }

    /// A TensorFlow-allocated tensor of `dtype` and `dims` whose bytes `fill` writes.
    pub fn filled(dtype: DataType, dims: &[i64], fill: impl FnOnce(&mut [u8])) -> Result<Tensor> {
        let len = dims
            .iter()
            .try_fold(dtype.size(), |n, d| {
                n.checked_mul(usize::try_from(*d).ok()?)
            })
            .ok_or_else(|| Error::Input(format!("a {dtype:?} tensor of {dims:?} is too large")))?;
        // SAFETY: TF allocates len bytes, which fill writes before anyone reads them.
        unsafe {
            let t = tf::TF_AllocateTensor(dtype.to_c(), dims.as_ptr(), dims.len() as c_int, len);
            if t.is_null() {
                return Err(Error::Native(format!(
                    "TF_AllocateTensor failed for {dtype:?} {dims:?}"
                )));
            }
            let t = Tensor(t);
            if len > 0 {
                fill(std::slice::from_raw_parts_mut(t.data(), len));
            }
            Ok(t)
        }
    }

    /// A string tensor of `dims` holding a copy of each of `values` (row-major). TensorFlow does not own
    /// the strings' heap parts, so our deallocator frees them with the buffer when TensorFlow drops the tensor.
    pub fn strings<'a>(
        dims: &[i64],
        values: impl ExactSizeIterator<Item = &'a [u8]>,
    ) -> Result<Tensor> {
        unsafe extern "C" fn free_strings(data: *mut c_void, len: usize, _arg: *mut c_void) {
            let n = len / std::mem::size_of::<tf::TF_TString>();
            // SAFETY: data is the boxed slice of n strings leaked below; TensorFlow calls this once.
            unsafe {
                let mut all = Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    data as *mut tf::TF_TString,
                    n,
                ));
                for s in all.iter_mut() {
                    tf::TF_StringDealloc(s);
                }
            }
        }
        let n = values.len();
        if dims.iter().product::<i64>() != n as i64 {
            return Err(Error::Native(format!(
                "{n} strings do not fill a tensor of {dims:?}"
            )));
        }
        // SAFETY: a zeroed TF_TString is what TF_StringInit expects to initialise; the slice is leaked into
        // the tensor, which frees it through free_strings (also when TF_NewTensor fails).
        unsafe {
            let mut all: Box<[tf::TF_TString]> = (0..n).map(|_| std::mem::zeroed()).collect();
            for (s, v) in all.iter_mut().zip(values) {
                tf::TF_StringInit(s);
                tf::TF_StringCopy(s, v.as_ptr() as *const c_char, v.len());
            }
            let len = std::mem::size_of_val(&*all);
            let data = Box::into_raw(all) as *mut tf::TF_TString;
            let t = tf::TF_NewTensor(
                tf::TF_STRING,
                dims.as_ptr(),
                dims.len() as c_int,
                data as *mut c_void,
                len,
                Some(free_strings),
                ptr::null_mut(),
            );
            if t.is_null() {
                return Err(Error::Native(format!(
                    "TF_NewTensor failed for strings of {dims:?}"
                )));
            }
            Ok(Tensor(t))
        }
    }

    /// A scalar string tensor (checkpoint paths).
    pub fn scalar_string(value: &str) -> Result<Tensor> {
        Self::strings(&[], std::iter::once(value.as_bytes()))
    }

    /// The bytes of each element of a string tensor, in place (valid while the tensor lives).
    pub fn string_values(&self) -> Result<Vec<&[u8]>> {
        if self.tf_type() != tf::TF_STRING as i32 {
            return Err(Error::Model(format!(
                "expected a string tensor, got {}",
                tf_type_name(self.tf_type())
            )));
        }
        let n = self.byte_size() / std::mem::size_of::<tf::TF_TString>();
        let first = self.data() as *const tf::TF_TString;
        Ok((0..n)
            .map(|i| {
                // SAFETY: the buffer holds n initialised TF_TStrings, which live as long as self.
                unsafe {
                    let s = first.add(i);
                    let data = tf::TF_StringGetDataPointer(s) as *const u8;
                    match tf::TF_StringGetSize(s) {
                        0 => &[][..],
                        len => std::slice::from_raw_parts(data, len),
                    }
                }
            })
            .collect())
    }

    /// Address of the first element.
    pub fn data(&self) -> *mut u8 {
        // SAFETY: live tensor.
        unsafe { tf::TF_TensorData(self.0) as *mut u8 }
    }

    /// Dimensions.
    pub fn dims(&self) -> Vec<i64> {
        // SAFETY: live tensor; indices below TF_NumDims.
        unsafe {
            (0..tf::TF_NumDims(self.0))
                .map(|i| tf::TF_Dim(self.0, i))
                .collect()
        }
    }

    /// TensorFlow's DataType enum value.
    pub fn tf_type(&self) -> i32 {
        // SAFETY: live tensor.
        unsafe { tf::TF_TensorType(self.0) as i32 }
    }

    /// Size of the data in bytes.
    pub fn byte_size(&self) -> usize {
        // SAFETY: live tensor.
        unsafe { tf::TF_TensorByteSize(self.0) }
    }

    /// The elements in place, when `T` is the tensor's element type.
    pub fn as_slice<T: Copy>(&self, dtype: DataType) -> Result<&[T]> {
        if DataType::from_tf(self.tf_type()) != Some(dtype)
            || dtype.size() != std::mem::size_of::<T>()
        {
            return Err(Error::Model(format!(
                "expected a {dtype:?} tensor, got {}",
                tf_type_name(self.tf_type())
            )));
        }
        let n = self.byte_size() / dtype.size();
        // SAFETY: the buffer holds n elements of T, aligned by TensorFlow, and lives as long as self.
        Ok(unsafe { std::slice::from_raw_parts(self.data() as *const T, n) })
    }

    /// The elements, when `T` matches the tensor's element size (for tests and checks).
    pub fn to_vec<T: Copy>(&self) -> Vec<T> {
        let n = self.byte_size() / std::mem::size_of::<T>();
        // SAFETY: the buffer holds byte_size bytes, aligned for any of our element types.
        unsafe { std::slice::from_raw_parts(self.data() as *const T, n).to_vec() }
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        // SAFETY: owned, deleted once.
        unsafe { tf::TF_DeleteTensor(self.0) }
    }
}

/// A graph tensor ("op:index") resolved in a loaded graph.
#[derive(Debug, Clone, Copy)]
pub struct Port(tf::TF_Output);

// SAFETY: a TF_Operation pointer is an immutable handle into a graph that outlives the port's use.
unsafe impl Send for Port {}
unsafe impl Sync for Port {}

/// Owned `TF_SessionOptions` holding a serialized ConfigProto.
pub(crate) struct SessionOptions(*mut tf::TF_SessionOptions);

impl SessionOptions {
    /// Options holding `config`, a serialized ConfigProto. The first quiets TensorFlow's start-up log
    /// (options come before any session, and TensorFlow reads its log level once).
    pub(crate) fn new(config: &[u8]) -> Result<Self> {
        quiet_tensorflow();
        let status = Status::new();
        // SAFETY: the config bytes are live for the call, which copies them.
        unsafe {
            let opts = SessionOptions(tf::TF_NewSessionOptions());
            tf::TF_SetConfig(
                opts.0,
                config.as_ptr() as *const c_void,
                config.len(),
                status.0,
            );
            status.check(|m| Error::Native(format!("session config rejected: {m}")))?;
            Ok(opts)
        }
    }
}

impl Drop for SessionOptions {
    fn drop(&mut self) {
        // SAFETY: owned, deleted once.
        unsafe { tf::TF_DeleteSessionOptions(self.0) }
    }
}

/// A SavedModel loaded into one session: graph, session, and its MetaGraphDef.
pub struct SavedModel {
    graph: *mut tf::TF_Graph,
    session: *mut tf::TF_Session,
    meta: MetaGraphDef,
}

// SAFETY: TF_SessionRun is thread-safe; the graph is read-only after loading.
unsafe impl Send for SavedModel {}
unsafe impl Sync for SavedModel {}

impl SavedModel {
    /// TensorFlow's own SavedModel loader: graph, session, variables restored, init op run.
    pub(crate) fn load_by_tensorflow(
        dir: &Path,
        tags: &[String],
        options: &SessionOptions,
    ) -> Result<SavedModel> {
        let c_dir = CString::new(dir.to_string_lossy().as_bytes()).map_err(|_| {
            Error::Input(format!("model path {} contains a NUL byte", dir.display()))
        })?;
        let c_tags = tags
            .iter()
            .map(|t| CString::new(t.as_str()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| Error::Input("a tag contains a NUL byte".into()))?;
        let tag_ptrs: Vec<*const c_char> = c_tags.iter().map(|t| t.as_ptr()).collect();
        let status = Status::new();
        // SAFETY: every pointer handed to TensorFlow is live for the call; we own what it returns.
        unsafe {
            let graph = tf::TF_NewGraph();
            let meta_buf = tf::TF_NewBuffer();
            let session = tf::TF_LoadSessionFromSavedModel(
                options.0,
                ptr::null(),
                c_dir.as_ptr(),
                tag_ptrs.as_ptr(),
                tag_ptrs.len() as c_int,
                graph,
                meta_buf,
                status.0,
            );
            let loaded = status.check(|m| Error::Model(m.to_string()));
            let meta = loaded.and_then(|_| {
                let bytes =
                    std::slice::from_raw_parts((*meta_buf).data as *const u8, (*meta_buf).length);
                MetaGraphDef::decode(bytes)
                    .map_err(|e| Error::Model(format!("bad MetaGraphDef: {e}")))
            });
            tf::TF_DeleteBuffer(meta_buf);
            match meta {
                Ok(mut meta) => {
                    meta.graph_def = Vec::new(); // TensorFlow holds the graph: its bytes are not needed twice
                    Ok(SavedModel {
                        graph,
                        session,
                        meta,
                    })
                }
                Err(e) => {
                    if !session.is_null() {
                        tf::TF_CloseSession(session, status.0);
                        tf::TF_DeleteSession(session, status.0);
                    }
                    tf::TF_DeleteGraph(graph);
                    Err(e)
                }
            }
        }
    }

    /// Imports the graph of `meta` with every op that names no device placed on `device`, in a new
    /// session, without restoring anything: the C API's SavedModel loader takes no default device, so
    /// `crate::loader` does the rest of that loader's work itself.
    pub(crate) fn import(
        mut meta: MetaGraphDef,
        options: &SessionOptions,
        device: &str,
    ) -> Result<SavedModel> {
        let c_device = CString::new(device)
            .map_err(|_| Error::Input(format!("device {device:?} contains a NUL byte")))?;
        let status = Status::new();
        // SAFETY: every pointer handed to TensorFlow is live for the call; we own what it returns.
        unsafe {
            let graph = tf::TF_NewGraph();
            let opts = tf::TF_NewImportGraphDefOptions();
            tf::TF_ImportGraphDefOptionsSetDefaultDevice(opts, c_device.as_ptr());
            let buf = tf::TF_NewBufferFromString(
                meta.graph_def.as_ptr() as *const c_void,
                meta.graph_def.len(),
            );
            tf::TF_GraphImportGraphDef(graph, buf, opts, status.0);
            tf::TF_DeleteBuffer(buf);
            tf::TF_DeleteImportGraphDefOptions(opts);
            meta.graph_def = Vec::new();
            if let Err(e) = status.check(|m| Error::Model(format!("importing its graph: {m}"))) {
                tf::TF_DeleteGraph(graph);
                return Err(e);
            }
            let session = tf::TF_NewSession(graph, options.0, status.0);
            if let Err(e) = status.check(|m| Error::Model(format!("creating its session: {m}"))) {
                tf::TF_DeleteGraph(graph);
                return Err(e);
            }
            Ok(SavedModel {
                graph,
                session,
                meta,
            })
        }
    }

    /// How many GPU devices the session has.
    pub(crate) fn gpu_count(&self) -> Result<usize> {
        Ok(self
            .devices()?
            .iter()
            .filter(|d| d.contains("GPU:"))
            .count())
    }

    /// The session's devices, short names (`CPU:0`, `GPU:0`).
    pub fn devices(&self) -> Result<Vec<String>> {
        let status = Status::new();
        // SAFETY: the session is live; we own and delete the list it returns, and copy each name before that.
        unsafe {
            let list = tf::TF_SessionListDevices(self.session, status.0);
            status.check(|m| Error::Native(format!("listing the session's devices: {m}")))?;
            let mut names = Vec::new();
            for i in 0..tf::TF_DeviceListCount(list) {
                let name = tf::TF_DeviceListName(list, i, status.0);
                if status.check(|m| Error::Native(m.to_string())).is_ok() && !name.is_null() {
                    let full = CStr::from_ptr(name).to_string_lossy();
                    names.push(full.rsplit("device:").next().unwrap_or(&full).to_string());
                }
            }
            tf::TF_DeleteDeviceList(list);
            Ok(names)
        }
    }

    /// The MetaGraphDef the model was loaded with (signatures, saver_def).
    pub fn meta_graph(&self) -> &MetaGraphDef {
        &self.meta
    }

    /// Resolves a graph tensor name such as "serving_default_x:0".
    pub fn port(&self, tensor: &str) -> Result<Port> {
        let (op, index) = match tensor.rsplit_once(':') {
            Some((op, i)) => (op, i.parse::<c_int>().map_err(|_| bad_tensor(tensor))?),
            None => (tensor, 0),
        };
        let c_op = CString::new(op).map_err(|_| bad_tensor(tensor))?;
        // SAFETY: live graph and a NUL-terminated name.
        let oper = unsafe { tf::TF_GraphOperationByName(self.graph, c_op.as_ptr()) };
        if oper.is_null() {
            return Err(Error::Model(format!(
                "graph has no operation for tensor '{tensor}'"
            )));
        }
        Ok(Port(tf::TF_Output { oper, index }))
    }

    /// Runs the session: feeds `inputs`, fetches `outputs`. `what` names the run in errors.
    pub fn run(
        &self,
        inputs: &[(Port, &Tensor)],
        outputs: &[Port],
        what: &str,
    ) -> Result<Vec<Tensor>> {
        self.run_targets(inputs, outputs, &[], what)
    }

    /// [`Self::run`], also running the operations of `targets` (ops with no output to fetch, such as a
    /// saver's restore).
    pub fn run_targets(
        &self,
        inputs: &[(Port, &Tensor)],
        outputs: &[Port],
        targets: &[Port],
        what: &str,
    ) -> Result<Vec<Tensor>> {
        let target_ops: Vec<*const tf::TF_Operation> =
            targets.iter().map(|p| p.0.oper as *const _).collect();
        let in_ports: Vec<tf::TF_Output> = inputs.iter().map(|(p, _)| p.0).collect();
        let in_values: Vec<*mut tf::TF_Tensor> = inputs.iter().map(|(_, t)| t.0).collect();
        let out_ports: Vec<tf::TF_Output> = outputs.iter().map(|p| p.0).collect();
        let mut out_values: Vec<*mut tf::TF_Tensor> = vec![ptr::null_mut(); outputs.len()];
        let status = Status::new();
        // SAFETY: the arrays are live and sized as declared; inputs stay owned by the caller.
        unsafe {
            tf::TF_SessionRun(
                self.session,
                ptr::null(),
                in_ports.as_ptr(),
                in_values.as_ptr(),
                in_ports.len() as c_int,
                out_ports.as_ptr(),
                out_values.as_mut_ptr(),
                out_ports.len() as c_int,
                target_ops.as_ptr(),
                target_ops.len() as c_int,
                ptr::null_mut(),
                status.0,
            );
        }
        // Take ownership of whatever TensorFlow returned, even on failure, so nothing leaks.
        let owned: Vec<Tensor> = out_values
            .into_iter()
            .filter(|t| !t.is_null())
            .map(Tensor)
            .collect();
        status.check(|m| Error::Model(format!("TensorFlow failed running {what}: {m}")))?;
        if owned.len() != outputs.len() {
            return Err(Error::Native(format!(
                "{what}: TensorFlow returned too few outputs"
            )));
        }
        Ok(owned)
    }
}

fn bad_tensor(name: &str) -> Error {
    Error::Model(format!(
        "'{name}' is not a tensor name of the form op:index"
    ))
}

impl Drop for SavedModel {
    fn drop(&mut self) {
        let status = Status::new();
        // SAFETY: owned; closed and deleted once. A close error leaves nothing to do but log.
        unsafe {
            tf::TF_CloseSession(self.session, status.0);
            if let Err(e) = status.check(Error::Native) {
                log::warn!("closing a TensorFlow session: {e}");
            }
            tf::TF_DeleteSession(self.session, status.0);
            tf::TF_DeleteGraph(self.graph);
        }
    }
}

/// The version of the TensorFlow library this process runs (`TF_Version()`, e.g. `2.21.0`).
pub fn version() -> String {
    // SAFETY: TF_Version returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(tf::TF_Version()) }
        .to_string_lossy()
        .into_owned()
}

/// The two fields of TensorFlow's `OpList` a loaded library is described by: its ops' names (prost skips
/// the rest of each `OpDef`).
#[derive(Clone, PartialEq, prost::Message)]
struct OpList {
    #[prost(message, repeated, tag = "1")]
    op: Vec<OpName>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct OpName {
    #[prost(string, tag = "1")]
    name: String,
}

/// Loads an op library into this process (`TF_LoadLibrary`): its ops and kernels join TensorFlow's global
/// registries for the life of the process. Returns the names of the ops it registered, or TensorFlow's
/// message. The library handle is kept (leaked): TensorFlow never unloads a library, and deleting the handle
/// would only free the `OpList` it holds.
pub fn load_library(path: &Path) -> std::result::Result<Vec<String>, String> {
    quiet_tensorflow();
    let c_path = CString::new(path.to_string_lossy().as_bytes())
        .map_err(|_| "the path contains a NUL byte".to_string())?;
    let status = Status::new();
    // SAFETY: c_path and status are live for the call; TensorFlow copies the path.
    let library = unsafe { tf::TF_LoadLibrary(c_path.as_ptr(), status.0) };
    status.check(Error::Native).map_err(|e| e.to_string())?;
    if library.is_null() {
        return Err("TF_LoadLibrary returned no library".into());
    }
    // SAFETY: library is a live handle; the buffer it returns stays owned by the handle, which we never delete.
    let ops = unsafe {
        let buffer = tf::TF_GetOpList(library);
        if buffer.data.is_null() {
            &[][..]
        } else {
            std::slice::from_raw_parts(buffer.data as *const u8, buffer.length)
        }
    };
    let list = OpList::decode(ops).map_err(|e| format!("its OpList does not decode: {e}"))?;
    Ok(list.op.into_iter().map(|o| o.name).collect())
}
