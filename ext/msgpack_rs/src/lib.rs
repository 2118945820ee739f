use magnus::{Error, Ruby};

#[magnus::init(name = "msgpack_rs")]
fn init(ruby: &Ruby) -> Result<(), Error> {
    let _m = ruby.define_module("MessagePack")?;
    Ok(())
}
