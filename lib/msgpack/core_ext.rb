# frozen_string_literal: true

module MessagePack
  # #to_msgpack for the classes MessagePack writes natively.
  module CoreExt
    # to_msgpack -> String
    # to_msgpack(packer) -> packer, after writing self into it
    # to_msgpack(io) -> nil, after writing self to io
    def to_msgpack(packer_or_io = nil)
      return MessagePack.pack(self) unless packer_or_io
      return to_msgpack_with_packer(packer_or_io) if packer_or_io.is_a?(MessagePack::Packer)

      MessagePack.pack(self, packer_or_io)
    end
  end
end

# Each to_msgpack_with_packer calls the packer's writer for its own type directly, so the
# receiver itself skips ext lookup (its elements do not). Plain `def`s, not define_method:
# methods defined from a block cannot be called from other Ractors.

class NilClass
  include MessagePack::CoreExt

  private def to_msgpack_with_packer(packer)
    packer.write_nil
    packer
  end
end

class TrueClass
  include MessagePack::CoreExt

  private def to_msgpack_with_packer(packer)
    packer.write_true
    packer
  end
end

class FalseClass
  include MessagePack::CoreExt

  private def to_msgpack_with_packer(packer)
    packer.write_false
    packer
  end
end

class Integer
  include MessagePack::CoreExt

  private def to_msgpack_with_packer(packer)
    packer.write_int(self)
    packer
  end
end

class Float
  include MessagePack::CoreExt

  private def to_msgpack_with_packer(packer)
    packer.write_float(self)
    packer
  end
end

class String
  include MessagePack::CoreExt

  private def to_msgpack_with_packer(packer)
    packer.write_string(self)
    packer
  end
end

class Array
  include MessagePack::CoreExt

  private def to_msgpack_with_packer(packer)
    packer.write_array(self)
    packer
  end
end

class Hash
  include MessagePack::CoreExt

  private def to_msgpack_with_packer(packer)
    packer.write_hash(self)
    packer
  end
end

class Symbol
  include MessagePack::CoreExt

  private def to_msgpack_with_packer(packer)
    packer.write_symbol(self)
    packer
  end
end

module MessagePack
  class ExtensionValue
    include CoreExt

    private def to_msgpack_with_packer(packer)
      packer.write_extension(self)
      packer
    end
  end
end
