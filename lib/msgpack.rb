# frozen_string_literal: true

require "msgpack/version"
require "msgpack/msgpack_rs" # native: Buffer, Packer, Unpacker, Factory, errors

module MessagePack
  # Value of an ext type nobody registered (see Unpacker's allow_unknown_ext).
  # The C gem builds it as an anonymous Struct, so do the same.
  ExtensionValue = Struct.new(:type, :payload) unless const_defined?(:ExtensionValue, false)
end

require "msgpack/packer"
require "msgpack/unpacker"
require "msgpack/factory"
require "msgpack/symbol"
require "msgpack/core_ext"
require "msgpack/timestamp"
require "msgpack/time"

module MessagePack
  # Registrations made here apply to MessagePack.pack/unpack and every #to_msgpack.
  DefaultFactory = Factory.new unless const_defined?(:DefaultFactory, false)

  # pack/dump(obj, io = nil, options = nil) and unpack/load(src, options = nil)
  # are native module functions (see ext/msgpack_rs/src/fast_path.rs): they
  # behave like DefaultFactory.packer(io, options).write(obj).full_pack and
  # DefaultFactory.unpacker(options).feed_reference(src).full_unpack, without
  # building a Packer/Unpacker per call.
end

require "msgpack/memory_pressure" # compact!, CompactReport, mapped files, MemoryPressure.watch
