# frozen_string_literal: true

module MessagePack
  # Ext payload for integers beyond 64 bits; loaded only by require "msgpack/bigint".
  #
  #   factory.register_type(0x01, Integer,
  #                         packer: MessagePack::Bigint.method(:to_msgpack_ext),
  #                         unpacker: MessagePack::Bigint.method(:from_msgpack_ext),
  #                         oversized_integer_extension: true)
  #
  # Payload: a sign byte (0 for >= 0, 1 for < 0), then the magnitude as big-endian
  # 32-bit words, least significant word first.
  module Bigint
    # Kept from the C gem for parity. It is outside -128..127, so it cannot be
    # registered: pick your own type id.
    TYPE = -142

    CHUNK_BITLENGTH = 32
    FORMAT = "CL>*"

    def self.to_msgpack_ext(bigint)
      magnitude = bigint.abs
      fields = [bigint.negative? ? 1 : 0]
      offset = 0
      while offset < magnitude.bit_length
        fields << magnitude[offset, CHUNK_BITLENGTH]
        offset += CHUNK_BITLENGTH
      end
      fields.pack(FORMAT)
    end

    def self.from_msgpack_ext(data)
      sign, *words = data.unpack(FORMAT)
      magnitude = words.reverse_each.inject(0) { |sum, word| (sum << CHUNK_BITLENGTH) | word }
      sign == 0 ? magnitude : -magnitude
    end
  end
end
