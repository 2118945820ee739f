# frozen_string_literal: true

require "msgpack/version"

# The native extension (Buffer, Packer, Unpacker, Factory, errors). The precompiled
# x86_64-linux gem carries one per Ruby minor version, lib/msgpack/<major.minor>/; the
# source gem builds lib/msgpack/msgpack_rs.so (in its extension directory) at install.
module MessagePack
  module NativeLoader # :nodoc:
    def self.load
      minor = RUBY_VERSION[/\A\d+\.\d+/]
      prebuilt = Dir.glob(File.join(__dir__, "msgpack", "[0-9]*.[0-9]*", "msgpack_rs.{so,bundle}"))
      return require("msgpack/msgpack_rs") if prebuilt.empty?

      mine = prebuilt.find { |f| File.basename(File.dirname(f)) == minor }
      return require(mine.delete_suffix(File.extname(mine))) if mine

      built_for = prebuilt.map { |f| File.basename(File.dirname(f)) }.sort_by { |v| Gem::Version.new(v) }
      raise LoadError, "msgpack-rs: this precompiled gem has extensions for Ruby #{built_for.join(", ")}, " \
                       "not for Ruby #{minor}. Install the source gem, which builds for any Ruby >= 3.1 " \
                       "(needs cargo and libclang): gem install msgpack-rs --platform ruby"
    end
  end
  private_constant :NativeLoader
end
MessagePack.const_get(:NativeLoader).load

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
  # are native module functions (see ext/msgpack_rs/src/factory/one_shot.rs): they
  # behave like DefaultFactory.packer(io, options).write(obj).full_pack and
  # DefaultFactory.unpacker(options).feed_reference(src).full_unpack, without
  # building a Packer/Unpacker per call.
end

require "msgpack/memory_pressure" # compact!, CompactReport, mapped files, MemoryPressure.watch
