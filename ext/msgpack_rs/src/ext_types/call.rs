//! Calling registered packers and unpackers: through a direct call when
//! the registration allows one (a method on the object or a class, a
//! Method), otherwise `call` on the Proc; only from a Ractor that may.
use crate::runtime::gc_ref::GcRef;
use crate::runtime::ractor::{callable_here, check_callable_owned};
use crate::runtime::raw;
use magnus::{rb_sys::AsRawValue, rb_sys::FromRawValue, value::ReprValue, Error, Value};
use rb_sys::VALUE;

/// How to call a registered packer or unpacker without going through its
/// Proc: what the C gem's `Method#to_proc` / `Symbol#to_proc` would do, minus
/// a Proc call and (for Method registrations, which Ractors need wrapped in
/// `lambda { |*args| recv.__send__(name, *args) }`) an argument Array per
/// call. Set by `Factory#register_type` (msgpack/factory.rb).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum DirectKind {
    /// Call the Proc.
    None,
    /// `obj.public_send(mid, *extra)` (a Symbol packer: `Symbol#to_proc`).
    Public,
    /// `method.call(obj, *extra)` of the registered Method object (bound
    /// when registered, as the C gem's `Method#to_proc`). A Method is never
    /// shareable: only the Ractor that registered it calls it this way;
    /// others call the Proc.
    Method,
    /// `receiver.__send__(mid, obj, *extra)`: a Method of a shareable
    /// receiver (a Module), registered as a shareable lambda doing exactly
    /// this, so that the factory stays shareable (a Method object would
    /// not be).
    Send,
}

/// A registration's direct call, as stored (receiver kept GC-visible).
#[derive(Clone)]
pub struct Direct {
    pub kind: DirectKind,
    pub receiver: GcRef,
    pub mid: rb_sys::ID,
}

impl Default for Direct {
    fn default() -> Self {
        Direct {
            kind: DirectKind::None,
            receiver: GcRef::nil(),
            mid: 0,
        }
    }
}

/// A direct call as taken out for one call (see [`Direct`]).
#[derive(Clone, Copy)]
pub struct DirectCall {
    pub kind: DirectKind,
    pub receiver: VALUE,
    pub mid: rb_sys::ID,
}

impl Direct {
    pub fn call(&self) -> DirectCall {
        DirectCall {
            kind: self.kind,
            receiver: self.receiver.get(),
            mid: self.mid,
        }
    }

    /// From `register_type`'s `packer_call:`/`unpacker_call:` option: a
    /// Method object, `[receiver, name]` (sent to a shareable receiver), or a
    /// method name Symbol (sent to the object); anything else (nil): no
    /// direct call.
    pub fn from_option(v: Option<Value>) -> Result<Direct, Error> {
        let Some(v) = v else {
            return Ok(Direct::default());
        };
        if let Some(ary) = magnus::RArray::from_value(v) {
            if ary.len() != 2 {
                return Ok(Direct::default());
            }
            let receiver: Value = ary.entry(0)?;
            let name: magnus::Symbol = ary.entry(1)?;
            // SAFETY: a live Symbol (see below).
            let mid = unsafe { rb_sys::rb_sym2id(name.as_raw()) };
            return Ok(Direct {
                kind: DirectKind::Send,
                // SAFETY: a live object; a Direct is held by a registry
                // entry, whose holder marks it (`Direct::mark`).
                receiver: unsafe { GcRef::new(receiver.as_raw()) },
                mid,
            });
        }
        if let Some(name) = magnus::Symbol::from_value(v) {
            // SAFETY: a live Symbol; method names are static Symbols (or
            // become one, as any method name does).
            let mid = unsafe { rb_sys::rb_sym2id(name.as_raw()) };
            return Ok(Direct {
                kind: DirectKind::Public,
                receiver: GcRef::nil(),
                mid,
            });
        }
        // SAFETY: type check of a live object.
        if unsafe { rb_sys::rb_obj_is_method(v.as_raw()) } == raw::TRUE {
            return Ok(Direct {
                kind: DirectKind::Method,
                // SAFETY: as for `Send` above.
                receiver: unsafe { GcRef::new(v.as_raw()) },
                mid: 0,
            });
        }
        Ok(Direct::default())
    }

    pub(crate) fn mark(&self, marker: &magnus::gc::Marker) {
        self.receiver.mark(marker);
    }

    pub(crate) fn update(&self, compactor: &magnus::gc::Compactor) {
        self.receiver.update(compactor);
    }
}

/// `callable.call(*args)`, protected. A Proc is called directly (as the C
/// gem does), without a method lookup of `call`: ext procs run once per
/// packed or unpacked object.
fn call_callable(callable: VALUE, argv: &[VALUE]) -> Result<Value, Error> {
    let argc = argv.len() as std::os::raw::c_int;
    // SAFETY: `callable` is a live object from a registry.
    let is_proc = unsafe { rb_sys::rb_obj_is_proc(callable) } == crate::runtime::raw::TRUE;
    let r = magnus::rb_sys::protect(|| {
        // SAFETY: live arguments in `argv`, which outlives the call; errors
        // are caught by `protect`.
        unsafe {
            if is_proc {
                rb_sys::rb_proc_call_with_block(
                    callable,
                    argc,
                    argv.as_ptr(),
                    crate::runtime::raw::NIL,
                )
            } else {
                rb_sys::rb_funcallv(callable, call_id(), argc, argv.as_ptr())
            }
        }
    })?;
    // SAFETY: a live object just returned.
    Ok(unsafe { Value::from_raw(r) })
}

static CALL_ID: std::sync::OnceLock<rb_sys::ID> = std::sync::OnceLock::new();

/// The ID of `call` (looked up once; IDs of static names never change).
fn call_id() -> rb_sys::ID {
    // SAFETY: rb_intern of a NUL-terminated static name.
    *CALL_ID.get_or_init(|| unsafe { rb_sys::rb_intern(c"call".as_ptr()) })
}

/// Resolves `call`'s ID at load time, while only the main Ractor runs.
pub fn init() {
    let _ = call_id();
}

fn describe(side: &str, ty: i8, klass: VALUE) -> String {
    // SAFETY: a live class from a registry.
    let k = unsafe { Value::from_raw(klass) };
    format!("the {side} registered for ext type {ty} ({k})")
}

/// Calls a registered packer: through its direct call when it has one, a
/// Symbol names a method of `obj` (called with `extra`), anything else gets
/// `call(obj, *extra)`.
///
/// # Safety
/// `callable`, `klass` and `direct`'s receiver must be live (taken from a
/// registry entry its holder marks, and not kept past this call).
pub unsafe fn call_packer(
    callable: VALUE,
    direct: DirectCall,
    ty: i8,
    klass: VALUE,
    owner: u64,
    obj: Value,
    extra: &[Value],
) -> Result<Value, Error> {
    // SAFETY: per the contract.
    unsafe { check_callable_owned(callable, owner, || describe("packer", ty, klass))? };
    // At most the object and the packer: no allocation for the arguments.
    let mut argv = [raw::NIL; 2];
    let n = 1 + extra.len().min(1);
    argv[0] = obj.as_raw();
    if let Some(e) = extra.first() {
        argv[1] = e.as_raw();
    }
    match direct.kind {
        DirectKind::Public => return call_direct(obj.as_raw(), direct.mid, &argv[1..n]),
        // SAFETY: per the contract.
        DirectKind::Method if unsafe { callable_here(direct.receiver, owner) } => {
            return call_method(direct.receiver, &argv[..n]);
        }
        DirectKind::Send => return call_send(direct.receiver, direct.mid, &argv[..n]),
        _ => {}
    }
    // SAFETY: `callable` is a live object from a registry.
    let c = unsafe { Value::from_raw(callable) };
    if let Some(sym) = magnus::Symbol::from_value(c) {
        obj.funcall(sym, extra)
    } else {
        call_callable(callable, &argv[..n])
    }
}

/// Calls a registered unpacker: through its direct call when it has one, a
/// Symbol names a class method of `klass`, anything else gets `call(arg)`.
///
/// # Safety
/// As [`call_packer`].
pub unsafe fn call_unpacker(
    callable: VALUE,
    direct: DirectCall,
    ty: i8,
    klass: VALUE,
    owner: u64,
    arg: Value,
) -> Result<Value, Error> {
    // SAFETY: per the contract.
    unsafe { check_callable_owned(callable, owner, || describe("unpacker", ty, klass))? };
    let argv = [arg.as_raw()];
    match direct.kind {
        DirectKind::Public => return call_direct(arg.as_raw(), direct.mid, &[]),
        // SAFETY: per the contract.
        DirectKind::Method if unsafe { callable_here(direct.receiver, owner) } => {
            return call_method(direct.receiver, &argv);
        }
        DirectKind::Send => return call_send(direct.receiver, direct.mid, &argv),
        _ => {}
    }
    // SAFETY: live objects from a registry.
    let (c, k) = unsafe { (Value::from_raw(callable), Value::from_raw(klass)) };
    if let Some(sym) = magnus::Symbol::from_value(c) {
        k.funcall(sym, (arg,))
    } else {
        call_callable(callable, &argv)
    }
}

/// `receiver.public_send(mid, *argv)`, protected.
fn call_direct(receiver: VALUE, mid: rb_sys::ID, argv: &[VALUE]) -> Result<Value, Error> {
    let argc = argv.len() as std::os::raw::c_int;
    let r = magnus::rb_sys::protect(|| {
        // SAFETY: live receiver and arguments (argv outlives the call);
        // errors are caught by `protect`.
        unsafe { rb_sys::rb_funcallv_public(receiver, mid, argc, argv.as_ptr()) }
    })?;
    // SAFETY: a live object just returned.
    Ok(unsafe { Value::from_raw(r) })
}

/// `receiver.__send__(mid, *argv)`, protected.
fn call_send(receiver: VALUE, mid: rb_sys::ID, argv: &[VALUE]) -> Result<Value, Error> {
    let argc = argv.len() as std::os::raw::c_int;
    let r = magnus::rb_sys::protect(|| {
        // SAFETY: live receiver and arguments (argv outlives the call);
        // errors are caught by `protect`.
        unsafe { rb_sys::rb_funcallv(receiver, mid, argc, argv.as_ptr()) }
    })?;
    // SAFETY: a live object just returned.
    Ok(unsafe { Value::from_raw(r) })
}

/// `method.call(*argv)` of a Method object, protected.
fn call_method(method: VALUE, argv: &[VALUE]) -> Result<Value, Error> {
    let argc = argv.len() as std::os::raw::c_int;
    let r = magnus::rb_sys::protect(|| {
        // SAFETY: a live Method object and arguments (argv outlives the
        // call); errors are caught by `protect`.
        unsafe { rb_sys::rb_method_call(argc, argv.as_ptr(), method) }
    })?;
    // SAFETY: a live object just returned.
    Ok(unsafe { Value::from_raw(r) })
}
