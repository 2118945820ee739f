//! The Ruby methods of `MessagePack::Packer` that write (`write`,
//! `write_nil`, ..., the headers and `write_ext`), and the class's
//! definition.
use super::*;

impl Packer {
    // ---- write API (each returns self) ----

    fn write(rb_self: Value, obj: Value) -> Result<Value, Error> {
        let this = crate::runtime::receiver::this::<Self>(rb_self)?;
        if this.try_write_simple(obj.as_raw()) {
            this.output.maybe_flush()?;
            return Ok(rb_self);
        }
        let _walk = this.enter_walk()?;
        this.walker(rb_self)?.write_value(obj, 0)?;
        this.output.maybe_flush()?;
        Ok(rb_self)
    }

    fn write_nil(rb_self: Value) -> Result<Value, Error> {
        let this = crate::runtime::receiver::this::<Self>(rb_self)?;
        let _walk = this.enter_walk()?;
        this.output.out(encode::write_nil)?;
        Ok(rb_self)
    }

    fn write_true(rb_self: Value) -> Result<Value, Error> {
        let this = crate::runtime::receiver::this::<Self>(rb_self)?;
        let _walk = this.enter_walk()?;
        this.output.out(|o| encode::write_bool(o, true))?;
        Ok(rb_self)
    }

    fn write_false(rb_self: Value) -> Result<Value, Error> {
        let this = crate::runtime::receiver::this::<Self>(rb_self)?;
        let _walk = this.enter_walk()?;
        this.output.out(|o| encode::write_bool(o, false))?;
        Ok(rb_self)
    }

    fn write_int(rb_self: Value, v: Value) -> Result<Value, Error> {
        let this = crate::runtime::receiver::this::<Self>(rb_self)?;
        let _walk = this.enter_walk()?;
        let Some(i) = Integer::from_value(v) else {
            return Err(wrong_type(v, "Integer"));
        };
        this.walker(rb_self)?.write_integer(i)?;
        this.output.maybe_flush()?;
        Ok(rb_self)
    }

    fn write_float(rb_self: Value, v: Value) -> Result<Value, Error> {
        let this = crate::runtime::receiver::this::<Self>(rb_self)?;
        let _walk = this.enter_walk()?;
        if RString::from_value(v).is_some() {
            return Err(errors::type_error(
                "no implicit conversion to float from string",
            ));
        }
        let f = f64::try_convert(v)?;
        this.output.out(|o| encode::write_f64(o, f))?;
        Ok(rb_self)
    }

    fn write_float32(rb_self: Value, v: Value) -> Result<Value, Error> {
        let this = crate::runtime::receiver::this::<Self>(rb_self)?;
        let _walk = this.enter_walk()?;
        if !v.is_kind_of(ruby().class_numeric()) {
            return Err(errors::arg_error("Expected numeric"));
        }
        let f = f64::try_convert(v)?;
        this.output.out(|o| encode::write_f32(o, f as f32))?;
        Ok(rb_self)
    }

    fn write_string(rb_self: Value, v: Value) -> Result<Value, Error> {
        let this = crate::runtime::receiver::this::<Self>(rb_self)?;
        let _walk = this.enter_walk()?;
        let Some(s) = RString::from_value(v) else {
            return Err(wrong_type(v, "String"));
        };
        this.walker(rb_self)?.write_rstring(s)?;
        this.output.maybe_flush()?;
        Ok(rb_self)
    }

    fn write_bin(rb_self: Value, v: Value) -> Result<Value, Error> {
        let this = crate::runtime::receiver::this::<Self>(rb_self)?;
        let _walk = this.enter_walk()?;
        let Some(mut s) = RString::from_value(v) else {
            return Err(wrong_type(v, "String"));
        };
        let raw_s = s.as_raw();
        // Like msgpack-ruby, transcode to BINARY: text that is not ASCII
        // raises Encoding::UndefinedConversionError.
        // SAFETY: encoding index of a live String.
        let binary = unsafe { crate::runtime::raw::enc_index(raw_s) }
            == crate::runtime::raw::enc_indexes().binary;
        // SAFETY: coderange scan of a live String.
        if !binary && unsafe { rb_sys::rb_enc_str_asciionly_p(raw_s) } == 0 {
            s = RString::try_convert(s.funcall::<_, _, Value>("encode", ("ASCII-8BIT",))?)?;
        }
        // SAFETY: bytes of a live String, used before any Ruby call.
        let bytes = unsafe { crate::runtime::raw::str_bytes(s.as_raw()) };
        let len = encode::len_u32(bytes.len()).map_err(errors::too_long)?;
        let compat = this.compat();
        this.output.out(|o| {
            if compat {
                encode::write_str_header(o, len, true)
            } else {
                encode::write_bin_header(o, len)
            }
        })?;
        this.output.put_body(s.as_value(), bytes)?;
        this.output.maybe_flush()?;
        Ok(rb_self)
    }

    fn write_symbol(rb_self: Value, v: Value) -> Result<Value, Error> {
        let this = crate::runtime::receiver::this::<Self>(rb_self)?;
        let _walk = this.enter_walk()?;
        let Some(sym) = Symbol::from_value(v) else {
            return Err(wrong_type(v, "Symbol"));
        };
        this.walker(rb_self)?.write_symbol(sym)?;
        Ok(rb_self)
    }

    fn write_array(rb_self: Value, v: Value) -> Result<Value, Error> {
        let this = crate::runtime::receiver::this::<Self>(rb_self)?;
        let _walk = this.enter_walk()?;
        let Some(a) = RArray::from_value(v) else {
            return Err(wrong_type(v, "Array"));
        };
        this.walker(rb_self)?.write_array(a, 0)?;
        this.output.maybe_flush()?;
        Ok(rb_self)
    }

    fn write_hash(rb_self: Value, v: Value) -> Result<Value, Error> {
        let this = crate::runtime::receiver::this::<Self>(rb_self)?;
        let _walk = this.enter_walk()?;
        let Some(h) = RHash::from_value(v) else {
            return Err(wrong_type(v, "Hash"));
        };
        this.walker(rb_self)?.write_hash(h, 0)?;
        this.output.maybe_flush()?;
        Ok(rb_self)
    }

    fn write_extension(rb_self: Value, v: Value) -> Result<Value, Error> {
        let this = crate::runtime::receiver::this::<Self>(rb_self)?;
        let _walk = this.enter_walk()?;
        if !v.is_kind_of(ruby().class_struct()) {
            return Err(wrong_type(v, "Struct"));
        }
        let ty: Value = v.funcall("[]", (0,))?;
        let payload: Value = v.funcall("[]", (1,))?;
        let payload = RString::try_convert(payload)?;
        Self::write_ext(rb_self, ty, payload.as_value())
    }

    fn write_ext(rb_self: Value, ty: Value, payload: Value) -> Result<Value, Error> {
        let this = crate::runtime::receiver::this::<Self>(rb_self)?;
        let _walk = this.enter_walk()?;
        let ty = crate::ext_types::registry::ext_type(ty)?;
        let Some(s) = RString::from_value(payload) else {
            return Err(wrong_type(payload, "String"));
        };
        // SAFETY: bytes of a live String, copied before any Ruby call.
        let bytes = unsafe { crate::runtime::raw::str_bytes(s.as_raw()) };
        let len = encode::len_u32(bytes.len()).map_err(errors::too_long)?;
        this.output.out(|o| {
            encode::write_ext_header(o, ty, len);
            o.extend_from_slice(bytes);
        })?;
        this.output.maybe_flush()?;
        Ok(rb_self)
    }

    fn write_array_header(rb_self: Value, n: Value) -> Result<Value, Error> {
        let this = crate::runtime::receiver::this::<Self>(rb_self)?;
        let _walk = this.enter_walk()?;
        let n = header_count(n)?;
        this.output.out(|o| encode::write_array_header(o, n))?;
        Ok(rb_self)
    }

    fn write_map_header(rb_self: Value, n: Value) -> Result<Value, Error> {
        let this = crate::runtime::receiver::this::<Self>(rb_self)?;
        let _walk = this.enter_walk()?;
        let n = header_count(n)?;
        this.output.out(|o| encode::write_map_header(o, n))?;
        Ok(rb_self)
    }

    fn write_bin_header(rb_self: Value, n: Value) -> Result<Value, Error> {
        let this = crate::runtime::receiver::this::<Self>(rb_self)?;
        let _walk = this.enter_walk()?;
        let n = header_count(n)?;
        this.output.out(|o| encode::write_bin_header(o, n))?;
        Ok(rb_self)
    }
}

/// NUM2UINT semantics: negative numbers wrap to 32 bits; more than 32 bits
/// raise RangeError.
fn header_count(n: Value) -> Result<u32, Error> {
    let i = i64::try_convert(n)?;
    if i > u32::MAX as i64 || i < i32::MIN as i64 {
        return Err(errors::integer_too_big(i, "unsigned int"));
    }
    Ok(i as u32)
}

pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let class = module.define_class("Packer", ruby.class_object())?;
    class.define_alloc_func::<Packer>();
    class.define_method("initialize", method!(Packer::initialize, -1))?;
    class.define_method(
        "compatibility_mode?",
        method!(Packer::compatibility_mode_p, 0),
    )?;
    class.define_method("buffer", method!(Packer::buffer, 0))?;
    class.define_method("write", method!(Packer::write, 1))?;
    class.define_method("pack", method!(Packer::write, 1))?;
    class.define_method("write_nil", method!(Packer::write_nil, 0))?;
    class.define_method("write_true", method!(Packer::write_true, 0))?;
    class.define_method("write_false", method!(Packer::write_false, 0))?;
    class.define_method("write_int", method!(Packer::write_int, 1))?;
    class.define_method("write_float", method!(Packer::write_float, 1))?;
    class.define_method("write_float32", method!(Packer::write_float32, 1))?;
    class.define_method("write_string", method!(Packer::write_string, 1))?;
    class.define_method("write_bin", method!(Packer::write_bin, 1))?;
    class.define_method("write_bin_header", method!(Packer::write_bin_header, 1))?;
    class.define_method("write_symbol", method!(Packer::write_symbol, 1))?;
    class.define_method("write_array", method!(Packer::write_array, 1))?;
    class.define_method("write_hash", method!(Packer::write_hash, 1))?;
    class.define_method("write_extension", method!(Packer::write_extension, 1))?;
    class.define_method("write_ext", method!(Packer::write_ext, 2))?;
    class.define_method("write_array_header", method!(Packer::write_array_header, 1))?;
    class.define_method("write_map_header", method!(Packer::write_map_header, 1))?;
    class.define_method("flush", method!(Packer::flush, 0))?;
    class.define_method("reset", method!(Packer::reset, 0))?;
    class.define_method("clear", method!(Packer::reset, 0))?;
    class.define_method("size", method!(Packer::size, 0))?;
    class.define_method("empty?", method!(Packer::is_empty, 0))?;
    class.define_method("write_to", method!(Packer::write_to, 1))?;
    class.define_method("to_str", method!(Packer::to_str, 0))?;
    class.define_method("to_s", method!(Packer::to_str, 0))?;
    class.define_method("to_a", method!(Packer::to_a, 0))?;
    class.define_method("full_pack", method!(Packer::full_pack, 0))?;
    class.define_method(
        "registered_types_internal",
        method!(Packer::registered_types_internal, 0),
    )?;
    class.define_method(
        "register_type_internal",
        method!(Packer::register_type_internal, 3),
    )?;
    class.define_method(
        "compact!",
        method!(<Packer as crate::memory::Compactable>::compact_report, 0),
    )?;
    undef_copy(class)?;
    Ok(())
}
