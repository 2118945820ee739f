//! Ractor helpers: which Ractor we are in, and whether an object may be
//! touched from any Ractor.
use super::errors;
use super::gc_ref::GcRef;
use super::local::RactorLocal;
use magnus::Error;
use rb_sys::VALUE;

// This backs the public inline function `rb_ractor_shareable_p` of
// ruby/ractor.h; bindgen does not emit inline functions, so we declare what it
// calls. Exported by every supported Ruby (3.1-3.4).
extern "C" {
    fn rb_ractor_shareable_p_continue(obj: VALUE) -> bool;
}

/// The current Ractor's id (see [`current_id`]).
static ID: RactorLocal = RactorLocal::new();

/// True in the main Ractor.
///
/// Ruby has no public "am I the main Ractor" call (`rb_ractor_main_p_` and
/// `ruby_single_main_ractor` are private, and 3.3+ no longer export them), so
/// the id kept in Ractor-local storage tells: [`init`] stores 0 in the main
/// Ractor's storage at load time, and every other Ractor gets a fresh id.
#[inline]
pub fn in_main_ractor() -> bool {
    current_id() == 0
}

/// `Ractor.shareable?(obj)`.
///
/// # Safety
/// `obj` must be an immediate or a live object.
#[inline]
pub unsafe fn is_shareable(obj: VALUE) -> bool {
    if rb_sys::SPECIAL_CONST_P(obj) {
        return true;
    }
    // SAFETY: per the contract, a live heap object: its flags, then the
    // VM's deep check.
    unsafe {
        let flags = (*(obj as *const rb_sys::RBasic)).flags;
        flags & (rb_sys::ruby_fl_type::RUBY_FL_SHAREABLE as VALUE) != 0
            || rb_ractor_shareable_p_continue(obj)
    }
}

/// Marks an object shareable without freezing it. Only for objects whose
/// every method is safe to call from any Ractor at once (see Factory).
///
/// # Safety
/// `obj` must be a live heap object that is safe to share as it is.
pub unsafe fn mark_shareable(obj: VALUE) {
    // SAFETY: per the contract; setting a flag bit of a live heap object.
    unsafe {
        (*(obj as *mut rb_sys::RBasic)).flags |= rb_sys::ruby_fl_type::RUBY_FL_SHAREABLE as VALUE;
    }
}

/// Makes the Ractor-local key and tags the loading Ractor as the main one
/// (extensions can only be loaded by the main Ractor).
pub fn init() {
    ID.init();
    // SAFETY: a Fixnum, in the main Ractor.
    ID.set(unsafe { rb_sys::LONG2FIX(0) });
}

/// An id for the current Ractor: 0 for the main Ractor, otherwise a
/// process-unique number kept in Ractor-local storage (never reused).
pub fn current_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    if let Some(id) = known_current_id() {
        return id;
    }
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    // SAFETY: a Fixnum (ids stay far below FIXNUM_MAX).
    ID.set(unsafe { rb_sys::LONG2FIX(id as _) });
    id
}

/// The current Ractor's id if it has one: `None` for a Ractor that never
/// used this library (so it owns none of its objects). Allocates nothing, so
/// GC callbacks may call it.
#[inline]
pub fn known_current_id() -> Option<u64> {
    let v = ID.get();
    // SAFETY: checked Fixnum.
    rb_sys::FIXNUM_P(v).then(|| unsafe { rb_sys::FIX2LONG(v) } as u64)
}

/// Whether `callable`, registered from Ractor `owner` (see [`current_id`]),
/// may be called or handed out here: shareable objects anywhere, others
/// only in the Ractor that registered them.
///
/// # Safety
/// `callable` must be an immediate or a live object.
#[inline]
pub unsafe fn callable_here(callable: VALUE, owner: u64) -> bool {
    // SAFETY: per the contract.
    let shareable = unsafe { is_shareable(callable) };
    shareable || (owner == 0 && in_main_ractor()) || owner == current_id()
}

/// Fails unless `callable` (registered from Ractor `owner`) may be called
/// from the current Ractor; `what` names it in the message.
///
/// # Safety
/// `callable` must be an immediate or a live object.
pub unsafe fn check_callable_owned(
    callable: VALUE,
    owner: u64,
    what: impl FnOnce() -> String,
) -> Result<(), Error> {
    // SAFETY: per the contract.
    if unsafe { callable_here(callable, owner) } {
        return Ok(());
    }
    Err(errors::isolation(&what()))
}

/// Fails unless `callable` may be called from the current Ractor.
///
/// # Safety
/// `callable` must be an immediate or a live object.
pub unsafe fn check_callable(callable: VALUE, what: impl FnOnce() -> String) -> Result<(), Error> {
    // SAFETY: per the contract.
    if unsafe { is_shareable(callable) } || in_main_ractor() {
        return Ok(());
    }
    Err(errors::isolation(&what()))
}

/// [`is_shareable`] for an object held in a [`GcRef`].
#[inline]
pub fn held_is_shareable(held: &GcRef) -> bool {
    // SAFETY: a GcRef holds nil, an immediate or a live object (its contract).
    unsafe { is_shareable(held.get()) }
}

/// [`callable_here`] for a callable held in a [`GcRef`].
#[inline]
pub fn held_callable_here(held: &GcRef, owner: u64) -> bool {
    // SAFETY: a GcRef holds nil, an immediate or a live object (its contract).
    unsafe { callable_here(held.get(), owner) }
}
