# frozen_string_literal: true

module MessagePack
  # The spec's timestamp extension (type -1): seconds and nanoseconds since the epoch.
  # Not registered by default; see MessagePack::Time for the usual setup with ::Time.
  class Timestamp
    TYPE = -1

    TIMESTAMP32_MAX_SEC = (1 << 32) - 1 # largest sec in the 4-byte form
    TIMESTAMP64_MAX_SEC = (1 << 34) - 1 # largest sec in the 8-byte form

    attr_reader :sec, :nsec

    # No range checks, as in the C gem.
    def initialize(sec, nsec)
      @sec = sec
      @nsec = nsec
    end

    # Decodes a 4, 8 or 12 byte payload (all fields big-endian).
    def self.from_msgpack_ext(data)
      case data.bytesize
      when 4 # sec: uint32
        new(data.unpack1("L>"), 0)
      when 8 # nsec: uint30, then sec: uint34
        high, low = data.unpack("L>L>")
        new(((high & 0b11) << 32) | low, high >> 2)
      when 12 # nsec: uint32, then sec: int64
        nsec, sec = data.unpack("L>q>")
        new(sec, nsec)
      else
        raise MalformedFormatError, "Invalid timestamp data size: #{data.bytesize}"
      end
    end

    # Picks the smallest form that can hold the value; negative or huge seconds
    # need the 12-byte one.
    def self.to_msgpack_ext(sec, nsec)
      if sec >= 0 && nsec >= 0 && sec <= TIMESTAMP64_MAX_SEC
        if nsec == 0 && sec <= TIMESTAMP32_MAX_SEC
          [sec].pack("L>")
        else
          [(nsec << 2) | (sec >> 32), sec & 0xFFFF_FFFF].pack("L>L>")
        end
      else
        [nsec, sec].pack("L>q>")
      end
    end

    def to_msgpack_ext
      self.class.to_msgpack_ext(sec, nsec)
    end

    def ==(other)
      other.class == self.class && sec == other.sec && nsec == other.nsec
    end
  end
end
